#pragma once

// Pictures of one matched pair, for people who would rather look than read:
// the match plot, the certainty map and the warp (each image's colours
// carried onto the other's grid).

#include "matcher_adapters/matcher.h"

#include <opencv2/core.hpp>

#include <cstdint>

namespace l2m {

struct MatchPlotOptions {
  int max_lines = 300;   // Matches drawn (a random subset beyond this).
  int max_height = 720;  // Images are scaled to at most this height.
  uint64_t seed = 0;
  void Check() const;
};

// Both images side by side (same height) with a line per match, coloured by
// its score (turbo colour map: blue = low, red = high). Pixel positions are
// COLMAP pixels of the original images.
cv::Mat DrawMatchPlot(const cv::Mat& bgr1,
                      const cv::Mat& bgr2,
                      const PairMatches& matches,
                      const MatchPlotOptions& options = MatchPlotOptions());

// Certainty (CV_32F, values in [0, 1]) as an 8-bit grey picture: round(255 c).
cv::Mat CertaintyToGrey(const cv::Mat& certainty);

// RoMa's warp picture on the model grid (H, 2W): the left half shows image
// 2's colours fetched through the A->B warp onto A's grid, the right half
// image 1's colours fetched onto B's grid, blended towards white where the
// certainty is low. `warp` is CV_32FC4 (H, 2W) in normalised coordinates,
// `certainty` CV_32F (H, 2W).
cv::Mat DrawWarp(const cv::Mat& bgr1,
                 const cv::Mat& bgr2,
                 const cv::Mat& warp,
                 const cv::Mat& certainty);

}  // namespace l2m
