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

// The largest diagonal block CholeskyInverseBlockCuda takes (its factor and
// inverse both fit in one SM's shared memory).
constexpr int64_t kCholeskyInverseMaxBlock = 160;

// One diagonal step of BlockCholesky in one kernel: for each matrix b of the
// batch, the lower Cholesky factor of c[b] (only its lower triangle is read)
// into l[b] and that factor's inverse into inv[b] (both with zeros above the
// diagonal). A block of 1,024 threads per matrix, all in shared memory:
// 135 µs a step for 16 matrices of 160² (H100), where cuSOLVER's batched
// potrf and cuBLAS's triangular solve took ~250 µs in ~40 small launches.
// c, l, inv: float32 CUDA tensors (B, n, n), n <= kCholeskyInverseMaxBlock,
// rows of unit stride (any row and batch strides: views into larger
// matrices are fine).
void CholeskyInverseBlockCuda(const at::Tensor& c,
                              at::Tensor& l,
                              at::Tensor& inv);

}  // namespace internal
}  // namespace l2m
