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

// The GP's kernel matrix straight from fp16/bf16 features, in one kernel:
//   out[b, i, j] = exp((x_i · y_j / (nx[b, i] · ny[b, j] + 1e-6) − 1) / T)
//                  (+ sigma where i == j, when sigma != 0)
// The dot products are tensor-core GEMM tiles (fp32 accumulation of the
// exact fp16/bf16 products: the reference's float32 dot products of the
// widened features up to the order of the sums), and CosKernelFromDotsCuda's
// per-element ops run on the accumulators, so the (B, N, M) dots never go to
// memory and back. lower_only (square matrices): tiles wholly above the
// diagonal are skipped and left unwritten, for callers that read only the
// lower triangle (BlockCholesky). x (B, N, D), y (B, M, D) of one dtype
// with CosKernelMatrixSupported; nx (B, N), ny (B, M) contiguous float32.
// Returns (B, N, M) float32.
at::Tensor CosKernelMatrixCuda(const at::Tensor& x,
                               const at::Tensor& y,
                               const at::Tensor& nx,
                               const at::Tensor& ny,
                               double T,
                               double sigma,
                               bool lower_only);

// Whether CosKernelMatrixCuda and RowNormsCuda take x: fp16/bf16 CUDA
// (B, N, D) with contiguous 16-byte-aligned rows, D a multiple of 64.
bool CosKernelMatrixSupported(const at::Tensor& x);

// ||x[b, i, :]||₂ (B, N) in float32 for x as CosKernelMatrixSupported takes
// it (sums in another order than LibTorch's norm: within float32 rounding).
at::Tensor RowNormsCuda(const at::Tensor& x);

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
