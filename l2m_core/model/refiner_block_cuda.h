#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// One ConvRefiner block for inference in one CUDA kernel:
//   y = pw_weight · relu(depthwise5x5(x) + dw_bias) + pw_bias
// over channels-last activations, without the depthwise output ever leaving
// shared memory. Each thread block loads a spatial tile of x with its 2-pixel
// halo, computes the depthwise conv (fp32 accumulation) into a tile in
// shared memory, multiplies it by the 1×1 weights on the tensor cores and
// writes y once: two passes over the activations per block instead of six
// (cuDNN depthwise, bias+ReLU, GEMM). Pays off where the channels are few
// (RoMa's scales 2 and 1: 144 and 24 channels) and the blocks are
// memory-bound; wide blocks keep cuBLAS. Compiled for P ∈ {24, 40, 104, 112,
// 144}: the narrow refiners of the shipped presets and the fixture graph.
//
// x, y: (B, H, W, P) contiguous, fp16 or bf16;
// dw_weight: (25, P) float32 (tap-major, ky·5 + kx); dw_bias, pw_bias: (P)
// float32; pw_weight: (P, P) [out][in] in x's dtype. y must not alias x.
void RefinerBlockFused(const at::Tensor& x,
                       const at::Tensor& dw_weight,
                       const at::Tensor& dw_bias,
                       const at::Tensor& pw_weight,
                       const at::Tensor& pw_bias,
                       at::Tensor& y);

// Whether RefinerBlockFused takes activations with `channels` (padded)
// channels of `dtype` and a kernel_size × kernel_size depthwise conv.
bool RefinerBlockFusedSupported(int64_t channels,
                                int64_t kernel_size,
                                at::ScalarType dtype);

}  // namespace internal
}  // namespace l2m
