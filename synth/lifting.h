#pragma once

// Stage 2.1, part 1: lifting a single photo to 3D as L2M's get_data.py does
// (disparity -> normalised disparity -> depth, random focal, pixel-centred
// principal point). The cameras and the pose sampling live in camera.h and
// the procedural disparity in disparity.h (no OpenCV there); this header adds
// the cv::Mat side (files, resizing, normalisation).

#include "synth/camera.h"
#include "synth/disparity.h"

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <random>
#include <string>

namespace l2m {

// How the values of a disparity/depth input file are meant.
enum class DepthInputKind {
  kDisparity,  // Larger = nearer (Depth Anything, Middlebury). Default.
  kDepth,      // Metric depth (Redwood/TUM PNGs); converted to 1/depth.
};

struct LiftingOptions {
  // Source images and disparities are resized (short side) and centre-cropped
  // to size x size, as the reference's resize + resize_and_center_crop.
  int size = 512;
  // Focal length drawn uniformly in [min, max) * W (reference: 0.45 + 0.3U).
  double min_focal_fraction = 0.45;
  double max_focal_fraction = 0.75;
  // Reference: disp = (disp - min) / (max - min) + 0.001, depth = 1 / disp.
  double disparity_offset = 0.001;
  // A vertex is kept iff exp(-alpha_scale * |Sobel(disp)|) > alpha_threshold
  // (get_visible_mask with alpha_threshold 0.1).
  double alpha_scale = 10;
  double alpha_threshold = 0.1;
  DepthInputKind input_kind = DepthInputKind::kDisparity;
  // Raw input value that marks "unknown" (Middlebury aloeGT: 0; Redwood: 0).
  // Non-finite values are always unknown. Negative: none.
  double invalid_value = -1;
  // Multiplies raw integer inputs (e.g. 1/1000 for millimetre depth PNGs);
  // only the ratio matters after normalisation, so 1 is fine for disparity.
  double input_scale = 1;

  bool Check(std::string* error) const;
};

// Reads a disparity/depth map: .npy (any numeric dtype), .npz (first array),
// 8/16-bit PNG (Depth Anything V2 writes 16-bit disparity) or any image
// OpenCV reads as one channel. Returns CV_32F with NaN where unknown
// (non-finite, or equal to `invalid_value` when that is >= 0). Throws naming
// the file when it cannot be read.
cv::Mat ReadDepthInput(const std::string& path, const LiftingOptions& options);

// Reads an 8-bit colour image (BGR); throws naming the file if it is corrupt.
cv::Mat ReadColorImage(const std::string& path);

// Shorter side -> `size` (INTER_AREA when shrinking), then the centred
// size x size crop. `nearest` keeps raw values (for maps with NaN holes).
cv::Mat ResizeAndCenterCrop(const cv::Mat& image, int size, bool nearest);

// Turns a raw input map into the reference's normalised disparity in
// [offset, 1 + offset] (NaN stays NaN = unknown): depth inputs are inverted
// first. Throws if there is no valid value at all.
cv::Mat NormalizeDisparity(const cv::Mat& raw, const LiftingOptions& options);

// depth = 1 / disparity; 0 where unknown (0 = unsupervised downstream).
cv::Mat DisparityToDepth(const cv::Mat& normalized_disparity);

// CV_8U, 255 where a vertex is "visible" per the reference's Sobel test on the
// normalised disparity (unknown pixels are never visible).
cv::Mat VisibleVertexMask(const cv::Mat& normalized_disparity,
                          const LiftingOptions& options);

// ProceduralDisparityUnnormalized (disparity.h) as CV_32F, min-max
// normalised to [0.001, 1.001]. Deterministic in `seed`.
cv::Mat ProceduralDisparity(int width, int height, uint64_t seed);

}  // namespace l2m
