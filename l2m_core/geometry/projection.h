#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

// Batched pinhole geometry in LibTorch, as RoMa's warp_kpts computes it.
// Camera points are columns, (B, 3, L), so that a camera matrix acts on all of
// them with one batched matmul: the same ops in the same order as the
// reference keep float64 results bit-identical to it.
// Pixel coordinates are COLMAP's (top-left pixel centre at (0.5, 0.5));
// normalised coordinates are RoMa's (align_corners=False,
// x_px = W/2 · (x + 1)). Any float dtype and device; the caller picks the
// precision (the GT warp runs in float64).

namespace l2m {

enum class DepthInterpolation {
  kBilinear,  // grid_sample "bilinear" (RoMa's default for the GT)
  kNearest,   // grid_sample "nearest"
};

// Pixels (B, L, 2) at z-depths (B, L) -> camera points (B, 3, L) =
// K⁻¹ · [u, v, 1]ᵀ · z, with `calibration` K (B, 3, 3).
at::Tensor UnprojectPixels(const at::Tensor& pixels,
                           const at::Tensor& depth,
                           const at::Tensor& calibration);

// Points (B, 3, L) in camera 1 -> camera 2: R · X + t, where
// `cam2_from_cam1` is (B, 4, 4) or (B, 3, 4) = [R | t].
at::Tensor TransformPoints(const at::Tensor& cam2_from_cam1,
                           const at::Tensor& points);

// Camera points (B, 3, L) -> pixels (B, L, 2) = (K·X)_xy / ((K·X)_z +
// z_offset). RoMa adds z_offset = 1e-4 "to avoid zero depth"; 0 gives the
// exact pinhole projection. There is no z > 0 test: points behind the camera
// project mirrored (the depth-consistency check rejects them).
at::Tensor ProjectPoints(const at::Tensor& points,
                         const at::Tensor& calibration,
                         double z_offset = 0.0);

// Normalised points (B, L, 2) -> pixels of an h x w image, and back, with the
// reference's op order (w · (x + 1) / 2 and 2 · u / w − 1).
at::Tensor NormalizedToPixels(const at::Tensor& points, int64_t h, int64_t w);
at::Tensor PixelsToNormalized(const at::Tensor& pixels, int64_t h, int64_t w);

// Samples depth maps (B, H, W) at normalised points (B, L, 2) -> (B, L), as
// grid_sample(align_corners=False, padding zeros): outside the image the
// taps read 0, so a sample near the border mixes in zeros.
at::Tensor SampleDepth(const at::Tensor& depth,
                       const at::Tensor& points,
                       DepthInterpolation mode = DepthInterpolation::kBilinear);

// Cell centres of an h x w grid in normalised coordinates, (h·w, 2) row-major,
// channel 0 = x. Built like RoMa's get_gt_warp: float32 linspace(−1 + 1/n,
// 1 − 1/n, n), which can differ from the exact −1 + (2i + 1)/n by a float32
// ulp; cast the result for other dtypes. The linspace's last bit depends on
// the LibTorch version and device (1.13's CPU kernel made the fixtures).
at::Tensor NormalizedGrid(int64_t h,
                          int64_t w,
                          at::Device device = at::Device(at::kCPU));

}  // namespace l2m
