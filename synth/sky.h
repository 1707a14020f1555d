#pragma once

// Stage 2.3: sky masking. The reference runs a U^2-Net sky model
// (skyseg.onnx) whose output is min-max normalised per image, so it marks
// some pixels as sky even where there is none. This is a classical detector
// instead: smooth, bright, blue or grey-white regions connected to the top
// border and (when depth is known) far away. An image without such a region
// gets an empty mask.

#include <opencv2/core.hpp>

#include <string>

namespace l2m {

struct SkyOptions {
  // Work on a copy whose long side is this (speed; sky is low-frequency).
  int working_size = 256;
  // Max normalised Sobel magnitude of the blurred grey image (0..1 scale).
  double max_gradient = 0.012;
  // Blue sky: OpenCV hue in [min_hue, max_hue] (0..180), saturation >=
  // min_blue_saturation, value >= min_blue_value (0..1).
  double min_hue = 88;
  double max_hue = 135;
  double min_blue_saturation = 0.12;
  double min_blue_value = 0.35;
  // Overcast sky: saturation <= max_grey_saturation, value >= min_grey_value.
  double max_grey_saturation = 0.1;
  double min_grey_value = 0.8;
  // A region must cover this fraction of the image and this fraction of the
  // top row.
  double min_area_fraction = 0.01;
  double min_top_contact = 0.2;
  // Its median brightness must reach this quantile of the image's.
  double brightness_quantile = 0.8;
  // With depth: sky pixels must be in the farthest part of the normalised
  // disparity (disparity <= this), unknown depth allowed.
  double max_far_disparity = 0.15;

  bool Check(std::string* error) const;
};

// Returns CV_8U, 255 = sky, at the image's size. `depth` (CV_32F, 0 =
// unknown) may be empty.
cv::Mat DetectSky(const cv::Mat& image,
                  const cv::Mat& depth,
                  const SkyOptions& options);

// Sets depth to 0 (unsupervised) where sky; returns the number of pixels.
int MaskSkyDepth(const cv::Mat& sky, cv::Mat* depth);

}  // namespace l2m
