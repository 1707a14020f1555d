#include "l2m_core/match/warp_matches.h"

#include "l2m_core/match/coordinates.h"

#include <torch/torch.h>

#include <stdexcept>

namespace l2m {
namespace {

void CheckSizes(const ImageSize& a, const ImageSize& b) {
  if (a.height <= 0 || a.width <= 0 || b.height <= 0 || b.width <= 0) {
    throw std::invalid_argument("image sizes must be positive");
  }
}

}  // namespace

WarpHalves SplitSymmetricWarp(const at::Tensor& warp,
                              const at::Tensor& certainty) {
  if (warp.dim() != 3 || warp.size(2) != 4 || warp.size(1) % 2 != 0 ||
      certainty.dim() != 2 || certainty.size(0) != warp.size(0) ||
      certainty.size(1) != warp.size(1)) {
    throw std::invalid_argument(
        "SplitSymmetricWarp: expected warp (H, 2W, 4) and certainty (H, 2W)");
  }
  const int64_t w = warp.size(1) / 2;
  return {warp.narrow(1, 0, w),
          certainty.narrow(1, 0, w),
          warp.narrow(1, w, w),
          certainty.narrow(1, w, w)};
}

PixelMatches ToPixelMatches(const at::Tensor& matches,
                            const at::Tensor& certainty,
                            const ImageSize& size_a,
                            const ImageSize& size_b) {
  CheckSizes(size_a, size_b);
  if (matches.dim() != 2 || matches.size(1) != 4 ||
      certainty.numel() != matches.size(0)) {
    throw std::invalid_argument(
        "ToPixelMatches: expected matches (K, 4), certainty (K)");
  }
  return {
      ToPixelCoordinates(matches.narrow(1, 0, 2), size_a.height, size_a.width),
      ToPixelCoordinates(matches.narrow(1, 2, 2), size_b.height, size_b.width),
      certainty.reshape({-1})};
}

PixelMatches DenseWarpToPixelMatches(const at::Tensor& warp,
                                     const at::Tensor& certainty,
                                     const ImageSize& size_a,
                                     const ImageSize& size_b,
                                     double min_certainty) {
  if (warp.dim() < 1 || warp.size(-1) != 4 ||
      warp.numel() / 4 != certainty.numel()) {
    throw std::invalid_argument(
        "DenseWarpToPixelMatches: expected warp (..., 4) and certainty (...)");
  }
  const at::Tensor cert = certainty.reshape({-1});
  const at::Tensor keep = (cert > min_certainty).nonzero().view({-1});
  return ToPixelMatches(warp.reshape({-1, 4}).index_select(0, keep),
                        cert.index_select(0, keep),
                        size_a,
                        size_b);
}

PixelMatches SampleWarpToPixelMatches(const at::Tensor& warp,
                                      const at::Tensor& certainty,
                                      const ImageSize& size_a,
                                      const ImageSize& size_b,
                                      int64_t num,
                                      const SampleOptions& options) {
  CheckSizes(size_a, size_b);
  const SampledMatches sampled = Sample(warp, certainty, num, options);
  return ToPixelMatches(sampled.matches, sampled.certainty, size_a, size_b);
}

}  // namespace l2m
