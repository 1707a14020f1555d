#include "l2m_core/model/local_correlation.h"

#include <torch/torch.h>

#include <cmath>

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
  auto corr = torch::empty({B, n * n, h, w}, feature0.options());
  const auto sample = F::GridSampleFuncOptions()
                          .mode(torch::kBilinear)
                          .padding_mode(torch::kZeros)
                          .align_corners(false);
  // One offset at a time: the window of all offsets at once would need
  // B·C·h·w·(2r+1)² floats (0.7 GB at scale 16 of the full model).
  for (int64_t iy = 0; iy < n; ++iy) {
    for (int64_t ix = 0; ix < n; ++ix) {
      auto offset = torch::stack({lin_x[ix], lin_y[iy]});
      auto window =
          F::grid_sample(feature1, coords + offset, sample);  // (B, C, h, w)
      corr.select(1, iy * n + ix).copy_((f0 * window).sum(1));
    }
  }
  return corr;
}

}  // namespace l2m
