#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// The CNN's first layer on the float32 image: relu(conv3x3(x, weight,
// padding 1) + bias) for x (B, 3, H, W) float32 (NCHW or channels-last) and
// weight (C, 3, 3, 3), C 32 or 64, computed as autocast computes the conv
// followed by l2m's bias+ReLU pass: x and weight rounded to `dtype`, the
// products summed in float32, the sum rounded to `dtype`, then the bias
// added in float32, the ReLU, and one more rounding. Returns (B, C, H, W)
// channels-last `dtype`. cuDNN runs this 3-channel conv with a slow
// non-tensor-core kernel, then the bias needs its own pass over the 64-wide
// activations; here it is one implicit GEMM on the tensor cores (K = 27
// taps) that reads the image once and writes the activations once.
at::Tensor InputConvBiasRelu(const at::Tensor& x,
                             const at::Tensor& weight,
                             const at::Tensor& bias,
                             at::ScalarType dtype);

// Whether InputConvBiasRelu takes these (CUDA float32 x of 3 channels,
// a 3×3 weight of 32 or 64 outputs, fp16/bf16).
bool InputConvBiasReluSupported(const at::Tensor& x,
                                const at::Tensor& weight,
                                at::ScalarType dtype);

}  // namespace internal
}  // namespace l2m
