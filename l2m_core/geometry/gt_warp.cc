#include "l2m_core/geometry/gt_warp.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace l2m {
namespace {

void CheckBatch(const at::Tensor& t,
                int64_t dim,
                int64_t batch,
                const char* name) {
  if (!t.defined() || t.dim() != dim || t.size(0) != batch) {
    throw std::invalid_argument(
        std::string("GT warp: ") + name + " must have " + std::to_string(dim) +
        " dimensions and batch size " + std::to_string(batch));
  }
}

void CheckInputs(const at::Tensor& depth1,
                 const at::Tensor& depth2,
                 const at::Tensor& cam2_from_cam1,
                 const at::Tensor& calibration1,
                 const at::Tensor& calibration2) {
  if (!depth1.defined() || depth1.dim() != 3) {
    throw std::invalid_argument("GT warp: depth1 must be (B, H, W)");
  }
  const int64_t batch = depth1.size(0);
  CheckBatch(depth2, 3, batch, "depth2 (B, H, W)");
  CheckBatch(cam2_from_cam1, 3, batch, "cam2_from_cam1 (B, 4, 4)");
  CheckBatch(calibration1, 3, batch, "calibration1 (B, 3, 3)");
  CheckBatch(calibration2, 3, batch, "calibration2 (B, 3, 3)");
}

}  // namespace

void GtWarpOptions::Check() const {
  if (!(relative_depth_error_threshold > 0)) {
    throw std::invalid_argument(
        "GtWarpOptions: relative_depth_error_threshold must be > 0");
  }
  if (!(projection_z_offset >= 0) || !std::isfinite(projection_z_offset)) {
    throw std::invalid_argument(
        "GtWarpOptions: projection_z_offset must be finite and >= 0");
  }
}

WarpedKeypoints WarpKeypoints(const at::Tensor& keypoints,
                              const at::Tensor& depth1,
                              const at::Tensor& depth2,
                              const at::Tensor& cam2_from_cam1,
                              const at::Tensor& calibration1,
                              const at::Tensor& calibration2,
                              const GtWarpOptions& options) {
  options.Check();
  CheckInputs(depth1, depth2, cam2_from_cam1, calibration1, calibration2);
  CheckBatch(keypoints, 3, depth1.size(0), "keypoints (B, L, 2)");
  torch::NoGradGuard no_grad;
  const at::Tensor kpts1 = keypoints.to(torch::kFloat64);
  const at::Tensor d1 = depth1.to(torch::kFloat64);
  const at::Tensor d2 = depth2.to(torch::kFloat64);

  // Unproject with depth1's own size (the grid may be coarser).
  const at::Tensor z1 = SampleDepth(d1, kpts1, options.depth_interpolation);
  const at::Tensor nonzero = z1 != 0;
  const at::Tensor points1 =
      UnprojectPixels(NormalizedToPixels(kpts1, d1.size(1), d1.size(2)),
                      z1,
                      calibration1.to(torch::kFloat64));
  const at::Tensor points2 =
      TransformPoints(cam2_from_cam1.to(torch::kFloat64), points1);
  const at::Tensor z2 = points2.select(1, 2);
  const at::Tensor pixels2 = ProjectPoints(
      points2, calibration2.to(torch::kFloat64), options.projection_z_offset);

  // Covisibility in depth2's pixels, strict and asymmetric as RoMa's.
  const int64_t h2 = d2.size(1);
  const int64_t w2 = d2.size(2);
  const at::Tensor u2 = pixels2.select(-1, 0);
  const at::Tensor v2 = pixels2.select(-1, 1);
  const at::Tensor covisible =
      (u2 > 0) & (u2 < w2 - 1) & (v2 > 0) & (v2 < h2 - 1);

  WarpedKeypoints out;
  out.warp = PixelsToNormalized(pixels2, h2, w2);
  const at::Tensor d2_sampled =
      SampleDepth(d2, out.warp, options.depth_interpolation);
  out.relative_depth_error = ((d2_sampled - z2) / d2_sampled).abs();
  out.valid =
      nonzero & covisible &
      (out.relative_depth_error < options.relative_depth_error_threshold);
  return out;
}

DenseGtWarp GetGtWarp(const at::Tensor& depth1,
                      const at::Tensor& depth2,
                      const at::Tensor& cam2_from_cam1,
                      const at::Tensor& calibration1,
                      const at::Tensor& calibration2,
                      int64_t h,
                      int64_t w,
                      const GtWarpOptions& options) {
  CheckInputs(depth1, depth2, cam2_from_cam1, calibration1, calibration2);
  const int64_t batch = depth1.size(0);
  const at::Tensor grid = NormalizedGrid(h, w, depth1.device())
                              .to(torch::kFloat64)
                              .unsqueeze(0)
                              .expand({batch, h * w, 2})
                              .contiguous();
  const WarpedKeypoints warped = WarpKeypoints(grid,
                                               depth1,
                                               depth2,
                                               cam2_from_cam1,
                                               calibration1,
                                               calibration2,
                                               options);
  DenseGtWarp out;
  out.warp = warped.warp.reshape({batch, h, w, 2});
  out.prob = warped.valid.to(torch::kFloat32).reshape({batch, h, w});
  out.relative_depth_error = warped.relative_depth_error.reshape({batch, h, w});
  return out;
}

}  // namespace l2m
