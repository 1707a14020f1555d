#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// x = relu(x + bias) in place over a channels-last (B, C, H, W) tensor
// (float32, fp16 or bf16; C·sizeof a multiple of 16 bytes), bias (C)
// float32: the conv epilogue in one vectorised pass. LibTorch adds a conv's
// bias to a channels-last output with a strided broadcast kernel, and the
// ReLU is a second pass.
void BiasReluInplace(at::Tensor& x, const at::Tensor& bias);

// x = x + bias, the same pass without the ReLU (a conv's bias on its own:
// LibTorch's strided broadcast add ran at ~1.3 TB/s on an H100); bias
// float32 or x's dtype (as autocast casts a conv's bias), added in float32.
void BiasAddInplace(at::Tensor& x, const at::Tensor& bias);

// Whether BiasReluInplace and BiasAddInplace take `x` (CUDA, channels-last,
// channels filling 16-byte vectors).
bool BiasReluInplaceSupported(const at::Tensor& x);

}  // namespace internal
}  // namespace l2m
