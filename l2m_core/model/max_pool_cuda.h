#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// VGG's 2×2 max pool (stride 2, no padding, floor) over channels-last fp16 or
// bf16 activations (B, C, H, W), C a multiple of 8, one thread per 8
// channels of an output pixel; NaNs propagate as in max_pool2d. LibTorch's
// max_pool2d on CUDA also writes int64 argmax indices, 4× the output's
// bytes, which made its pools cost as much as VGG's convs.
at::Tensor MaxPool2x2(const at::Tensor& x);

// Whether MaxPool2x2 takes `x` (CUDA, channels-last, fp16/bf16, C % 8 == 0).
bool MaxPool2x2Supported(const at::Tensor& x);

}  // namespace internal
}  // namespace l2m
