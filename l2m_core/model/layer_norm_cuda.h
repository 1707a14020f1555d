#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace l2m {
namespace internal {

// The ViT block's residual step and the LayerNorm after it in one pass:
//   x_out = x + gamma ⊙ a          (as torch::addcmul: fp32 math, one rounding)
//   h     = LayerNorm(x_out) · weight + bias   (fp32 statistics of x_out)
// x, a: (..., C) contiguous fp16/bf16 of one shape; gamma, weight, bias: (C)
// in x's dtype (gamma may be undefined: x + a). Returns (x_out, h). Instead
// of addcmul (not vectorised for a broadcast gamma) plus a separate
// LayerNorm that reads x_out again: DINOv2's 48 such pairs a forward were
// ~1 ms a pair on an H100. C a multiple of 8, at most 8192.
std::pair<at::Tensor, at::Tensor> AddScaledLayerNorm(const at::Tensor& x,
                                                     const at::Tensor& a,
                                                     const at::Tensor& gamma,
                                                     const at::Tensor& weight,
                                                     const at::Tensor& bias,
                                                     double eps);

bool AddScaledLayerNormSupported(const at::Tensor& x);

}  // namespace internal
}  // namespace l2m
