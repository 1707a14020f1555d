#pragma once

// Dense matcher from optical flow (OpenCV DIS), no weights: a real matcher for
// video-like sequences and the test bed of the dense path of the backend.

#include "matcher_adapters/matcher.h"

#include <memory>
#include <string>

namespace l2m {

struct FlowMatcherOptions {
  // Longest side (pixels) of the working size at which flow is computed.
  int max_image_size = 640;

  // cv::DISOpticalFlow preset: "ultrafast", "fast" or "medium".
  std::string preset = "medium";

  // Distance between sampled points, in pixels of the working image.
  int grid_step = 4;

  // Forward-backward consistency threshold, in pixels of the working image.
  // A point is kept when |flow12(p) + flow21(p + flow12(p))| is below it; its
  // score is exp(-e^2 / (2 sigma^2)) with sigma = fb_threshold / 2, so a kept
  // point scores above exp(-2) ~ 0.135.
  double fb_threshold = 1.0;

  // Points scoring below this are dropped as well.
  double min_score = 0.0;

  // At most this many matches per pair (evenly thinned over the grid so the
  // coverage of the image is kept); <= 0 means no limit.
  int max_num_matches = 20000;

  // Returns false, and says why in *error if given, when an option is invalid.
  bool Check(std::string* error = nullptr) const;
};

// Name() is "flow"; IsDense() is true. Throws std::invalid_argument when the
// options do not pass Check().
//
// Working size: image 1 is resized (aspect kept) so that its longest side is
// at most max_image_size; image 2 is resized to exactly the same size, which
// is a non-uniform rescale where the aspect ratios differ (flow absorbs it).
// Results are in COLMAP pixels of each ORIGINAL image, with per-axis factors.
// Deterministic; MatchDense may be called concurrently on one matcher object.
// Throws std::invalid_argument for an empty image or a working size below
// 16 px on a side (DIS needs a few patches).
std::unique_ptr<Matcher> CreateFlowMatcher(const FlowMatcherOptions& options);

}  // namespace l2m
