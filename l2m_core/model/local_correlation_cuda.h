#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// True when l2m was built with its CUDA kernels (LibTorch with CUDA).
bool HaveLocalCorrelationKernel();

// The local correlation in one CUDA kernel, without materialising the
// sampled windows: out[b, k, i, j] = Σ_c f0[b,c,i,j]/√C · bilinear(f1[b,c],
// coords[b,i,j] + offset_k) over the (2r+1)² whole-pixel offsets of RoMa's
// window (row-major over (dy, dx)), with grid_sample's zero padding and
// align_corners=False indexing. f0 and f1 (B,C,h,w) of one size and dtype
// (float32, fp16 or bf16; channels-last avoids a copy), coords (B,h,w,2)
// float32 normalised; returns (B,(2r+1)²,h,w) in f0's dtype, channels-last.
at::Tensor LocalCorrelationKernel(const at::Tensor& f0,
                                  const at::Tensor& f1,
                                  const at::Tensor& coords,
                                  int radius,
                                  int64_t support_offset = 0);

}  // namespace internal
}  // namespace l2m
