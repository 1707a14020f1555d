#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// One wide ConvRefiner block (hundreds of channels) for inference in one
// CUDA kernel:
//   y = pw_weight · relu(depthwise5x5(x) + dw_bias) + pw_bias
// the depthwise conv on the CUDA cores and the 1×1 conv on the tensor cores
// of the same SM at the same time. A block an SM walks 8×16-pixel tiles:
// four producer warps compute a tile's depthwise result (fp32, the bits of
// DepthwiseBiasRelu) into shared memory, 64 channels at a time, while eight
// consumer warps multiply the previous chunks by the 1×1 weights (mma.sync,
// fp32 accumulation, 192 output channels a pass, the weights streamed from
// L2). Two kernels (DepthwiseBiasRelu, then a cuBLAS GEMM) run one after the
// other and write and read the depthwise result through memory.
//
// Compiled for P = 576 (the RoMa/L2M scale-4 refiner: 569 channels padded).
// x, y: (B, H, W, P) contiguous fp16/bf16; dw_weight (25, P), dw_bias (P),
// pw_bias (P) float32; pw_weight (P, P) [out][in] in x's dtype. y must not
// alias x. Sums the 1×1 in another order than cuBLAS: within fp32 rounding
// of the two-kernel path before the one rounding to x's dtype.
void WideRefinerBlock(const at::Tensor& x,
                      const at::Tensor& dw_weight,
                      const at::Tensor& dw_bias,
                      const at::Tensor& pw_weight,
                      const at::Tensor& pw_bias,
                      at::Tensor& y);

// Whether WideRefinerBlock takes `channels` (padded) channels of `dtype`
// and a kernel_size × kernel_size depthwise conv.
bool WideRefinerBlockSupported(int64_t channels,
                               int64_t kernel_size,
                               at::ScalarType dtype);

}  // namespace internal
}  // namespace l2m
