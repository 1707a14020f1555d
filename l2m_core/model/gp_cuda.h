#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// The GP's kernel matrix from the row dot products, in place, in one pass:
//   dots[b, i, j] = exp((dots / (nx[b, i] · ny[b, j] + 1e-6) − 1) / T)
//                   (+ sigma where i == j, when sigma != 0)
// with LibTorch's float operations in CosKernel's order (division by the
// scalar T as multiplication by its float reciprocal, as LibTorch's CUDA
// division by a CPU scalar), so the result is bit-equal to CosKernel(x, y,
// T) (+ sigma · I), which takes six passes over the (B, N, M) matrix and
// materialises the outer product of the norms and the identity.
// dots (B, N, M), nx (B, N), ny (B, M): contiguous float32 CUDA tensors.
void CosKernelFromDotsCuda(at::Tensor& dots,
                           const at::Tensor& nx,
                           const at::Tensor& ny,
                           double T,
                           double sigma);

}  // namespace internal
}  // namespace l2m
