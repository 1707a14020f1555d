#include "l2m_core/model/local_correlation.h"

#include "l2m_core/model/local_correlation_cuda.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace l2m {

at::Tensor LocalCorrelation(const at::Tensor& feature0,
                            const at::Tensor& feature1,
                            int radius,
                            const at::Tensor& flow) {
  namespace F = torch::nn::functional;
  const int64_t B = feature0.size(0), C = feature0.size(1);
  const int64_t h = feature0.size(2), w = feature0.size(3);
  const int64_t n = 2 * radius + 1;
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
#ifdef L2M_HAVE_CUDA_KERNELS
  if (feature0.is_cuda()) {
    // One kernel, no sampled windows in memory (float32 inside).
    return internal::LocalCorrelationKernel(
               f0.to(torch::kFloat).contiguous(),
               feature1.to(torch::kFloat).contiguous(),
               coords.to(torch::kFloat).contiguous(),
               offsets.to(torch::kFloat).contiguous())
        .to(feature0.scalar_type());
  }
#endif
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
