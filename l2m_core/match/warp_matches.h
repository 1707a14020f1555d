#pragma once

#include "l2m_core/match/sample.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace l2m {

// Pixel size of an original (unresized) image.
struct ImageSize {
  int64_t height = 0;
  int64_t width = 0;
};

// Matches in COLMAP pixel coordinates of the original images (top-left pixel
// centre (0.5, 0.5); FeatureKeypoint x/y take them as they are).
struct PixelMatches {
  at::Tensor points_a;   // (K, 2) float32 (x, y) in image A pixels
  at::Tensor points_b;   // (K, 2) float32 (x, y) in image B pixels
  at::Tensor certainty;  // (K)
};

// The symmetric matcher output (H, 2W, 4) / (H, 2W) split into the A->B half
// (left, A pixels) and the B->A half (right, B pixels); views, no copies.
struct WarpHalves {
  at::Tensor warp_a_to_b;       // (H, W, 4)
  at::Tensor certainty_a_to_b;  // (H, W)
  at::Tensor warp_b_to_a;       // (H, W, 4)
  at::Tensor certainty_b_to_a;  // (H, W)
};
WarpHalves SplitSymmetricWarp(const at::Tensor& warp,
                              const at::Tensor& certainty);

// Normalised matches (K, 4) + certainty (K) -> pixel matches. Because the
// coordinates are normalised, the network resolution does not matter here,
// only the original sizes (images were stretched, not cropped).
PixelMatches ToPixelMatches(const at::Tensor& matches,
                            const at::Tensor& certainty,
                            const ImageSize& size_a,
                            const ImageSize& size_b);

// Every warp pixel (both halves of a symmetric warp) with certainty >
// min_certainty, in pixel coordinates: the dense correspondence set.
PixelMatches DenseWarpToPixelMatches(const at::Tensor& warp,
                                     const at::Tensor& certainty,
                                     const ImageSize& size_a,
                                     const ImageSize& size_b,
                                     double min_certainty);

// Sample() (RoMa's balanced sampling) followed by ToPixelMatches(): what the
// reference's demos and benchmarks feed to RANSAC / COLMAP.
PixelMatches SampleWarpToPixelMatches(
    const at::Tensor& warp,
    const at::Tensor& certainty,
    const ImageSize& size_a,
    const ImageSize& size_b,
    int64_t num,
    const SampleOptions& options = SampleOptions());

}  // namespace l2m
