#include "l2m_core/geometry/projection.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace l2m {
namespace {

std::string ShapeString(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) {
    s += (i ? ", " : "") + std::to_string(t.size(i));
  }
  return s + ")";
}

void CheckShape(const at::Tensor& t,
                int64_t dim,
                int64_t last,
                const char* what,
                const char* expected) {
  if (!t.defined() || t.dim() != dim || (last > 0 && t.size(-1) != last)) {
    throw std::invalid_argument(
        std::string(what) + ": expected " + expected + ", got " +
        (t.defined() ? ShapeString(t) : std::string("an undefined tensor")));
  }
}

void CheckCalibration(const at::Tensor& k, const char* what) {
  CheckShape(k, 3, 3, what, "calibration (B, 3, 3)");
  if (k.size(1) != 3) {
    throw std::invalid_argument(std::string(what) +
                                ": expected calibration (B, 3, 3), got " +
                                ShapeString(k));
  }
}

}  // namespace

at::Tensor UnprojectPixels(const at::Tensor& pixels,
                           const at::Tensor& depth,
                           const at::Tensor& calibration) {
  CheckShape(pixels, 3, 2, "UnprojectPixels", "pixels (B, L, 2)");
  CheckShape(depth, 2, 0, "UnprojectPixels", "depth (B, L)");
  CheckCalibration(calibration, "UnprojectPixels");
  const at::Tensor homogeneous =
      torch::cat({pixels, torch::ones_like(pixels.narrow(-1, 0, 1))}, -1) *
      depth.unsqueeze(-1);  // (B, L, 3)
  return torch::matmul(calibration.inverse(), homogeneous.transpose(2, 1));
}

at::Tensor TransformPoints(const at::Tensor& cam2_from_cam1,
                           const at::Tensor& points) {
  if (!cam2_from_cam1.defined() || cam2_from_cam1.dim() != 3 ||
      cam2_from_cam1.size(2) != 4 ||
      (cam2_from_cam1.size(1) != 3 && cam2_from_cam1.size(1) != 4)) {
    throw std::invalid_argument(
        "TransformPoints: expected cam2_from_cam1 (B, 4, 4) or (B, 3, 4)");
  }
  CheckShape(points, 3, 0, "TransformPoints", "points (B, 3, L)");
  const at::Tensor rotation = cam2_from_cam1.slice(1, 0, 3).slice(2, 0, 3);
  const at::Tensor translation = cam2_from_cam1.slice(1, 0, 3).slice(2, 3, 4);
  return torch::matmul(rotation, points) + translation;
}

at::Tensor ProjectPoints(const at::Tensor& points,
                         const at::Tensor& calibration,
                         double z_offset) {
  CheckShape(points, 3, 0, "ProjectPoints", "points (B, 3, L)");
  CheckCalibration(calibration, "ProjectPoints");
  const at::Tensor image =
      torch::matmul(calibration, points).transpose(2, 1);  // (B, L, 3)
  return image.narrow(-1, 0, 2) / (image.narrow(-1, 2, 1) + z_offset);
}

at::Tensor NormalizedToPixels(const at::Tensor& points, int64_t h, int64_t w) {
  CheckShape(points, points.dim(), 2, "NormalizedToPixels", "(..., 2)");
  return torch::stack(
      {(points.select(-1, 0) + 1) * w / 2, (points.select(-1, 1) + 1) * h / 2},
      -1);
}

at::Tensor PixelsToNormalized(const at::Tensor& pixels, int64_t h, int64_t w) {
  CheckShape(pixels, pixels.dim(), 2, "PixelsToNormalized", "(..., 2)");
  return torch::stack(
      {pixels.select(-1, 0) * 2 / w - 1, pixels.select(-1, 1) * 2 / h - 1}, -1);
}

at::Tensor SampleDepth(const at::Tensor& depth,
                       const at::Tensor& points,
                       DepthInterpolation mode) {
  CheckShape(depth, 3, 0, "SampleDepth", "depth (B, H, W)");
  CheckShape(points, 3, 2, "SampleDepth", "points (B, L, 2)");
  if (points.size(0) != depth.size(0)) {
    throw std::invalid_argument("SampleDepth: batch sizes differ, depth " +
                                ShapeString(depth) + " vs points " +
                                ShapeString(points));
  }
  // torch.grid_sampler's enums: interpolation 0 bilinear / 1 nearest,
  // padding 0 zeros.
  const int64_t interpolation = mode == DepthInterpolation::kNearest ? 1 : 0;
  return torch::grid_sampler(depth.unsqueeze(1),
                             points.unsqueeze(2),
                             interpolation,
                             /*padding_mode=*/0,
                             /*align_corners=*/false)
      .select(1, 0)
      .select(-1, 0);
}

at::Tensor NormalizedGrid(int64_t h, int64_t w, at::Device device) {
  if (h <= 0 || w <= 0) {
    throw std::invalid_argument("NormalizedGrid: size must be positive, got " +
                                std::to_string(h) + " x " + std::to_string(w));
  }
  const auto options =
      torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const at::Tensor ys = torch::linspace(-1 + 1.0 / h, 1 - 1.0 / h, h, options);
  const at::Tensor xs = torch::linspace(-1 + 1.0 / w, 1 - 1.0 / w, w, options);
  return torch::stack(
             {xs.view({1, w}).expand({h, w}), ys.view({h, 1}).expand({h, w})},
             -1)
      .reshape({h * w, 2});
}

}  // namespace l2m
