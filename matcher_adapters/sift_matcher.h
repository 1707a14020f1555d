#pragma once

// Sparse SIFT matcher (OpenCV SIFT + brute-force matching), the classical
// baseline and the reference for the sparse path of the backend.

#include "matcher_adapters/matcher.h"

#include <memory>
#include <string>

namespace l2m {

struct SiftMatcherOptions {
  // Images larger than this (longest side, pixels) are downscaled for
  // extraction; keypoints are scaled back to the original image.
  int max_image_size = 1600;

  // Keep at most this many keypoints per image (the strongest responses).
  int max_num_features = 8192;

  // OpenCV SIFT detector thresholds (OpenCV's defaults).
  double contrast_threshold = 0.04;
  double edge_threshold = 10.0;

  // RootSIFT (L1-normalise, then square root) instead of L2-normalised SIFT.
  bool root_sift = true;

  // Lowe's ratio test: best / second-best distance must be below this.
  double max_ratio = 0.8;

  // Largest accepted L2 distance between unit-normalised descriptors
  // (COLMAP's default 0.7 bounds the angle; for unit vectors both are close).
  double max_distance = 0.7;

  // Keep only mutual nearest neighbours.
  bool cross_check = true;

  // Returns false, and says why in *error if given, when an option is invalid.
  bool Check(std::string* error = nullptr) const;
};

// Name() is "sift"; IsDense() is false. Throws std::invalid_argument when the
// options do not pass Check().
//
// Extract: keypoints in COLMAP pixels of the original image, scale in original
// pixels (sigma of the detection), orientation in radians measured from +x
// towards +y (image axes, y down); descriptors COLMAP-style uint8, 128-d.
// MatchFeatures: score = 1 - best/second-best distance ratio, in [0, 1].
// Both are deterministic (independent of the number of threads) and may be
// called concurrently on one matcher object.
std::unique_ptr<Matcher> CreateSiftMatcher(const SiftMatcherOptions& options);

}  // namespace l2m
