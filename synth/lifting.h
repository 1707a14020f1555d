#pragma once

// Stage 2.1, part 1: lifting a single photo to 3D as L2M's get_data.py does
// (disparity -> normalised disparity -> depth, random focal, pixel-centred
// principal point) and sampling the novel camera pose.
//
// Pixel coordinates everywhere in synth/ are COLMAP's: the centre of the
// top-left pixel is (0.5, 0.5), so pixel (row i, col j) has its centre at
// (j + 0.5, i + 0.5) and the image spans [0, W] x [0, H].

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <random>
#include <string>

namespace l2m {

// Pinhole camera in COLMAP pixel coordinates.
struct PinholeCamera {
  int width = 0;
  int height = 0;
  double fx = 0, fy = 0, cx = 0, cy = 0;

  Eigen::Matrix3d K() const;
  // Reference intrinsics: f = focal_fraction * W (both axes), principal point
  // at the image centre (W/2, H/2) — the reference's K scaled by 512.
  static PinholeCamera FromFocalFraction(int width,
                                         int height,
                                         double focal_fraction);
};

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

// Procedural stand-in when no depth model is available: a ground plane
// rising to a far horizon band plus a few fronto-parallel and slanted layers
// with sharp borders (depth discontinuities) and smooth low-frequency relief.
// Deterministic in `seed`. Returns a normalised-disparity-like map in (0, 1].
cv::Mat ProceduralDisparity(int width, int height, uint64_t seed);

// Ranges of the random relative pose (reference get_rand_ext,
// trans_range {x: 0.4, y: 0.4, z: 0.8, a: 18, b: 18, c: 18}): each component
// has magnitude uniform in [max/2, max] and a random sign; a negative max
// disables the component. Rotation components are axis-angle, max pi/18
// rad = 10 degrees (the reference's a = 18 means pi/18).
struct PoseRangeOptions {
  double max_tx = 0.4;
  double max_ty = 0.4;
  double max_tz = 0.8;
  double max_rx_deg = 10;
  double max_ry_deg = 10;
  double max_rz_deg = 10;

  bool Check(std::string* error) const;
};

// cam2_from_cam1 (X2 = R X1 + t), as the reference's M = T * R.
Eigen::Matrix4d SampleCam2FromCam1(const PoseRangeOptions& options,
                                   std::mt19937_64* rng);

// Stable seed from a base seed and a name (FNV-1a), so a photo's views do not
// depend on processing order or on the number of workers.
uint64_t SeedFor(uint64_t base_seed, const std::string& name, int index);

}  // namespace l2m
