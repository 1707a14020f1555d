#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// How LocalCorrelationKernel computes the dots: kAuto takes the
// tensor-core route over 8×8 query tiles for fp16/bf16 features with a
// multiple of 64 channels (tiles whose windows spread far apart, and every
// other case, take the per-query FFMA route); kPerQuery always the latter.
enum class LocalCorrelationRoute { kAuto, kPerQuery };

// True when l2m was built with its CUDA kernels (LibTorch with CUDA).
bool HaveLocalCorrelationKernel();

// The local correlation in one CUDA kernel, without materialising the
// sampled windows: out[b, k, i, j] = Σ_c f0[b,c,i,j]/√C · bilinear(f1[b,c],
// coords[b,i,j] + offset_k) over the (2r+1)² whole-pixel offsets of RoMa's
// window (row-major over (dy, dx)), with grid_sample's zero padding and
// align_corners=False indexing. f0 and f1 (B,C,h,w) of one size and dtype
// (float32, fp16 or bf16; channels-last avoids a copy), coords (B,h,w,2)
// float32 normalised; returns (B,(2r+1)²,h,w) in f0's dtype, channels-last.
// With `tile_routes`, it is set to a (2,) int32 CUDA tensor counting the
// tiles (with any window on the image) that took the tensor-core route and
// the per-query one.
at::Tensor LocalCorrelationKernel(
    const at::Tensor& f0,
    const at::Tensor& f1,
    const at::Tensor& coords,
    int radius,
    int64_t support_offset = 0,
    LocalCorrelationRoute route = LocalCorrelationRoute::kAuto,
    at::Tensor* tile_routes = nullptr);

}  // namespace internal
}  // namespace l2m
