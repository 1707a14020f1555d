#pragma once

#include "l2m_core/geometry/projection.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

// Dense ground truth from depth + intrinsics + pose, equal to RoMa's
// get_gt_warp / warp_kpts (romatch/utils/utils.py), shared by training
// (losses), synthesis checks and evaluation. Everything runs in float64 as in
// the reference (inputs are cast), on the inputs' device.
//
// Inputs as RoMa's training batch:
//   depth1 (B, H1, W1), depth2 (B, H2, W2): z-depth, 0 = unknown (sky, holes);
//   calibration1/2 (B, 3, 3): K for depth1's / depth2's own resolution;
//   cam2_from_cam1 (B, 4, 4) (or (B, 3, 4)): X2 = R · X1 + t (RoMa: T_1to2).

namespace l2m {

struct GtWarpOptions {
  // Depth-consistency test: valid iff |d2_sampled − z2| / d2_sampled < this.
  double relative_depth_error_threshold = 0.05;
  DepthInterpolation depth_interpolation = DepthInterpolation::kBilinear;
  // RoMa divides by (z + 1e-4) when projecting; it moves warps by up to
  // ~3e-3 px at these depths. Keep it for parity, 0 for exact geometry.
  double projection_z_offset = 1e-4;

  void Check() const;
};

struct WarpedKeypoints {
  // (B, L, 2) float64: positions in image 2, normalised for depth2's size.
  // Also written for invalid points (can lie far outside [−1, 1]).
  at::Tensor warp;
  // (B, L) bool: depth1 sample ≠ 0, strictly inside (0, W2 − 1) x (0, H2 − 1)
  // in depth2 pixels (RoMa's band: the last pixel centre is rejected), and
  // depth-consistent.
  at::Tensor valid;
  // (B, L) float64 |(d2 − z2) / d2|: inf where d2 = 0, NaN where d2 = z2 = 0.
  at::Tensor relative_depth_error;
};

// RoMa's warp_kpts: `keypoints` (B, L, 2) normalised in image 1
// (align_corners=False). Depth1 is sampled (zero padding), unprojected with
// depth1's own size and K1, transformed, projected with K2, and checked
// against depth2 sampled at the projection.
WarpedKeypoints WarpKeypoints(const at::Tensor& keypoints,
                              const at::Tensor& depth1,
                              const at::Tensor& depth2,
                              const at::Tensor& cam2_from_cam1,
                              const at::Tensor& calibration1,
                              const at::Tensor& calibration2,
                              const GtWarpOptions& options = {});

struct DenseGtWarp {
  at::Tensor warp;                  // (B, h, w, 2) float64, x first
  at::Tensor prob;                  // (B, h, w) float32 in {0, 1}
  at::Tensor relative_depth_error;  // (B, h, w) float64
};

// RoMa's get_gt_warp at any grid h x w (a network scale, independent of the
// depth sizes): WarpKeypoints of the cell centres of NormalizedGrid(h, w).
DenseGtWarp GetGtWarp(const at::Tensor& depth1,
                      const at::Tensor& depth2,
                      const at::Tensor& cam2_from_cam1,
                      const at::Tensor& calibration1,
                      const at::Tensor& calibration2,
                      int64_t h,
                      int64_t w,
                      const GtWarpOptions& options = {});

}  // namespace l2m
