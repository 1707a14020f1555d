#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// True when l2m was built with its CUDA kernels (LibTorch with CUDA).
bool HaveLocalCorrelationKernel();

// The local correlation in one CUDA kernel, without materialising the
// sampled windows: out[b, k, i, j] = Σ_c f0[b,c,i,j] · bilinear(f1[b,c],
// coords[b,i,j] + offsets[k]) with grid_sample's zero padding and
// align_corners=False indexing. f0 (B,C,h,w) and f1 (B,C,h',w') float32
// contiguous, coords (B,h,w,2) and offsets (K,2) float32 normalised; returns
// (B,K,h,w) float32.
at::Tensor LocalCorrelationKernel(const at::Tensor& f0,
                                  const at::Tensor& f1,
                                  const at::Tensor& coords,
                                  const at::Tensor& offsets);

}  // namespace internal
}  // namespace l2m
