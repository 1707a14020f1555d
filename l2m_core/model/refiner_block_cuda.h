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

// A refiner's last block and its out_conv in one kernel: returns
// out (B, O, H, W) float32 = out_weight · y + out_bias, y the block's output
// as RefinerBlockFused rounds it, never written to memory. out_weight
// (O, P), out_bias (O) float32, 1 ≤ O ≤ kRefinerOutConvMaxOut (below). Sums
// in another order than RefinerOutConv: within float32 rounding of it.
at::Tensor RefinerBlockFusedOutConv(const at::Tensor& x,
                                    const at::Tensor& dw_weight,
                                    const at::Tensor& dw_bias,
                                    const at::Tensor& pw_weight,
                                    const at::Tensor& pw_bias,
                                    const at::Tensor& out_weight,
                                    const at::Tensor& out_bias);

// Whether RefinerBlockFused takes activations with `channels` (padded)
// channels of `dtype` and a kernel_size × kernel_size depthwise conv.
bool RefinerBlockFusedSupported(int64_t channels,
                                int64_t kernel_size,
                                at::ScalarType dtype);

// The depthwise 5×5 conv + bias + ReLU of a wide block (the 1×1 stays a
// cuBLAS GEMM) in one kernel: y = relu(depthwise5x5(x) + dw_bias), fp32
// accumulation, one rounding to the storage dtype. Replaces cuDNN's
// depthwise conv plus a separate bias+ReLU pass. x, y: (B, H, W, P)
// contiguous fp16/bf16, P a multiple of 8; dw_weight (25, P), dw_bias (P)
// float32. y must not alias x.
void DepthwiseBiasRelu(const at::Tensor& x,
                       const at::Tensor& dw_weight,
                       const at::Tensor& dw_bias,
                       at::Tensor& y);

bool DepthwiseBiasReluSupported(int64_t channels,
                                int64_t kernel_size,
                                at::ScalarType dtype);

// The refiner's out_conv, float32 as in the reference: out (B, O, H, W) =
// weight (O, P) · x + bias, x (B, H, W, P) contiguous fp16/bf16 read once
// and widened exactly, O ≤ kRefinerOutConvMaxOut, P a multiple of 8.
inline constexpr int kRefinerOutConvMaxOut = 4;
at::Tensor RefinerOutConv(const at::Tensor& x,
                          const at::Tensor& weight,
                          const at::Tensor& bias);

// The refiner's x_hat = grid_sample(y, grid) (bilinear, zero padding,
// align_corners=False, LibTorch's formulas) written straight into channels
// [channel_offset, channel_offset + C) of its input buffer dest (B, h, w, P),
// instead of sampling channel by channel and copying. y (B, C, Hs, Ws)
// channels-last fp16/bf16 of dest's dtype, C a multiple of 8; grid
// (B, h, w, 2) contiguous in y's dtype (the reference samples with the
// low-precision grid); channel_offset a multiple of 8.
void GridSampleInto(const at::Tensor& y,
                    const at::Tensor& grid,
                    at::Tensor& dest,
                    int64_t channel_offset);

bool GridSampleIntoSupported(const at::Tensor& y, at::ScalarType dtype);

}  // namespace internal
}  // namespace l2m
