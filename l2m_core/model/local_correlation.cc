#include "l2m_core/model/local_correlation.h"

#include "l2m_core/model/local_correlation_cuda.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#ifdef L2M_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGraphsC10Utils.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace l2m {
namespace {

// CPU: the window's offsets are whole pixels (steps of 2/h, 2/w in
// normalised coordinates), so every offset of a query shares its bilinear
// weights. Dot products with the (n+1)² integer neighbours, then one
// bilinear blend per offset: the grid_sample sums up to rounding, without
// sampled windows in memory (2.5 s -> ~0.1 s for l2m_s at 448², 1 thread).
at::Tensor LocalCorrelationCpu(const at::Tensor& f0_scaled,
                               const at::Tensor& feature1,
                               const at::Tensor& coords,
                               int radius) {
  const int64_t B = f0_scaled.size(0), C = f0_scaled.size(1);
  const int64_t h = f0_scaled.size(2), w = f0_scaled.size(3);
  const int64_t n = 2 * radius + 1, m = n + 1;
  const at::Tensor q = f0_scaled.permute({0, 2, 3, 1}).contiguous();
  const at::Tensor t = feature1.permute({0, 2, 3, 1}).contiguous();
  const at::Tensor xy = coords.contiguous();
  at::Tensor out = torch::zeros({B, n * n, h, w}, f0_scaled.options());
  const float* qp = q.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  const float* cp = xy.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, B * h * w, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> dots(m * m);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (h * w), p = i % (h * w);
      // grid_sample's unnormalisation (align_corners=False), in float.
      const float ix = ((cp[2 * i] + 1.f) * w - 1.f) / 2.f;
      const float iy = ((cp[2 * i + 1] + 1.f) * h - 1.f) / 2.f;
      if (!std::isfinite(ix) || !std::isfinite(iy) || std::abs(ix) > 1e6f ||
          std::abs(iy) > 1e6f) {
        continue;  // far outside: every tap is zero padding
      }
      const float fx = std::floor(ix), fy = std::floor(iy);
      const float tx = ix - fx, ty = iy - fy;
      const int64_t x0 = static_cast<int64_t>(fx) - radius;
      const int64_t y0 = static_cast<int64_t>(fy) - radius;
      const float* qv = qp + i * C;
      for (int64_t r = 0; r < m; ++r) {
        const int64_t y = y0 + r;
        for (int64_t c = 0; c < m; ++c) {
          const int64_t x = x0 + c;
          float dot = 0;
          if (y >= 0 && y < h && x >= 0 && x < w) {
            const float* tv = tp + ((b * h + y) * w + x) * C;
            for (int64_t k = 0; k < C; ++k) dot += qv[k] * tv[k];
          }
          dots[r * m + c] = dot;
        }
      }
      float* o = op + b * n * n * h * w + p;
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < n; ++c) {
          o[(r * n + c) * h * w] = (1 - ty) * ((1 - tx) * dots[r * m + c] +
                                               tx * dots[r * m + c + 1]) +
                                   ty * ((1 - tx) * dots[(r + 1) * m + c] +
                                         tx * dots[(r + 1) * m + c + 1]);
        }
      }
    }
  });
  return out;
}

}  // namespace

at::Tensor LocalCorrelation(const at::Tensor& feature0,
                            const at::Tensor& feature1,
                            int radius,
                            const at::Tensor& flow,
                            int64_t support_offset) {
  namespace F = torch::nn::functional;
  const int64_t B = feature0.size(0), C = feature0.size(1);
  const int64_t h = feature0.size(2), w = feature0.size(3);
  const int64_t n = 2 * radius + 1;
  TORCH_CHECK(support_offset >= 0 && support_offset < std::max<int64_t>(B, 1),
              "LocalCorrelation: support_offset ",
              support_offset,
              " outside [0, ",
              B,
              ")");
#ifdef L2M_HAVE_CUDA_KERNELS
  if (feature0.is_cuda() && feature0.sizes() == feature1.sizes() &&
      feature0.size(1) <= 1024 && radius <= 7) {
    // CUDA kernels over whole-pixel windows (8×8 query tiles on the tensor
    // cores, torn tiles per query), no sampled windows in memory, in the
    // features' dtype (fp32 accumulation).
    // L2M_LOCAL_CORR_ROUTES=1 prints how many 8×8 query tiles took the
    // tensor-core route and the per-query one, and a checksum of the output
    // (a diagnostic for real warps; it synchronises, so not while a CUDA
    // graph is captured); L2M_LOCAL_CORR_ROUTE=per_query forces that route
    // (A/B runs).
    static const bool report = std::getenv("L2M_LOCAL_CORR_ROUTES") != nullptr;
    static const bool per_query = [] {
      const char* route = std::getenv("L2M_LOCAL_CORR_ROUTE");
      return route != nullptr && std::string(route) == "per_query";
    }();
    at::Tensor routes;
    const bool count =
        report && c10::cuda::currentStreamCaptureStatusMayInitCtx() ==
                      c10::cuda::CaptureStatus::None;
    at::Tensor out = internal::LocalCorrelationKernel(
        feature0,
        feature1.to(feature0.scalar_type()),
        flow.permute({0, 2, 3, 1}).to(torch::kFloat),
        radius,
        support_offset,
        per_query ? internal::LocalCorrelationRoute::kPerQuery
                  : internal::LocalCorrelationRoute::kAuto,
        count ? &routes : nullptr);
    if (count) {
      const at::Tensor r = routes.cpu();
      std::fprintf(stderr,
                   "[local corr] %lld×%lld×%lld r=%d: tiles %d tensor, %d per "
                   "query; sum |out| %.6e\n",
                   static_cast<long long>(B),
                   static_cast<long long>(h),
                   static_cast<long long>(w),
                   radius,
                   r[0].item<int>(),
                   r[1].item<int>(),
                   out.abs().sum(at::kDouble).item<double>());
    }
    return out;
  }
#endif
  if (support_offset != 0) {
    return LocalCorrelation(
        feature0, torch::roll(feature1, {-support_offset}, {0}), radius, flow);
  }
  // Offsets in float32 like the reference (linspace on the feature device).
  const auto opts = flow.options();
  auto lin_y = torch::linspace(-2.0 * radius / h, 2.0 * radius / h, n, opts);
  auto lin_x = torch::linspace(-2.0 * radius / w, 2.0 * radius / w, n, opts);
  auto coords = flow.permute({0, 2, 3, 1});  // (B, h, w, 2)
  auto f0 = feature0 / std::sqrt(static_cast<double>(C));
  const auto sample = F::GridSampleFuncOptions()
                          .mode(torch::kBilinear)
                          .padding_mode(torch::kZeros)
                          .align_corners(false);
  // Offsets in reference order (row-major over (dy, dx)) as (n², 2) = (x, y).
  auto grid = torch::meshgrid({lin_y, lin_x}, "ij");
  auto offsets = torch::stack({grid[1], grid[0]}, -1).reshape({n * n, 2});
  if (!feature0.is_cuda() && feature0.sizes() == feature1.sizes() &&
      f0.scalar_type() == at::kFloat && feature1.scalar_type() == at::kFloat &&
      coords.scalar_type() == at::kFloat) {
    return LocalCorrelationCpu(f0, feature1, coords, radius);
  }
  // Several offsets per grid_sample (stacked along the height), bounded so
  // the sampled windows stay under ~64M values: the full window would need
  // B·C·h·w·(2r+1)² (0.7 GB at scale 16 of the full model), one offset at a
  // time costs a kernel launch per offset.
  constexpr int64_t kMaxValues = int64_t{1} << 26;
  const int64_t per_offset = std::max<int64_t>(1, B * C * h * w);
  const int64_t chunk = std::clamp<int64_t>(kMaxValues / per_offset, 1, n * n);
  std::vector<at::Tensor> parts;
  for (int64_t k0 = 0; k0 < n * n; k0 += chunk) {
    const int64_t k = std::min(chunk, n * n - k0);
    // (B, 1, h, w, 2) + (1, k, 1, 1, 2) -> (B, k·h, w, 2)
    auto g = (coords.unsqueeze(1) +
              offsets.slice(0, k0, k0 + k).view({1, k, 1, 1, 2}))
                 .reshape({B, k * h, w, 2});
    auto window = F::grid_sample(feature1, g, sample).view({B, C, k, h, w});
    parts.push_back((f0.unsqueeze(2) * window).sum(1));  // (B, k, h, w)
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
}

}  // namespace l2m
