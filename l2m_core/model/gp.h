#pragma once

#include "l2m_core/model/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

// Gaussian-process regression of the support image's position embedding onto
// the query features (RoMa's GP with CosKernel, fourier basis, no_cov). Runs in
// fp32.

namespace l2m {

class GpImpl : public torch::nn::Module {
 public:
  explicit GpImpl(const GpConfig& config);

  // x: query features (B, C, h1, w1), y: support features (B, C, h2, w2).
  // Returns the posterior mean of cos(8π·pos_conv(grid_y)) at x:
  // (B, gp_dim, h1, w1).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y);

 private:
  GpConfig config_;
  torch::nn::Conv2d pos_conv_{nullptr};
};
TORCH_MODULE(Gp);

// A = L Lᵀ for symmetric positive definite A (B, n, n), with the inverses of
// L's n / `block` diagonal blocks (B, n / block, block, block), which the
// substitution below needs. Left-looking by block columns: each step one
// batched GEMM (the columns already factored), the diagonal block's factor
// and inverse (on CUDA for blocks <= 160 one kernel, CholeskyInverseBlockCuda;
// else cuSOLVER's Cholesky and cuBLAS's triangular solve) and one GEMM for
// the panel below it, so a batch of large matrices runs mostly on the GEMM
// kernels instead of cuSOLVER's potrf (~10 TF/s on 16 matrices of 1600²).
// Only A's lower triangle is read; `block` must divide n. Inference only, as
// the block solves below: they write into preallocated outputs, which
// autograd does not follow (the GP takes cholesky_solve with gradients).
struct BlockCholeskyFactor {
  torch::Tensor L;                 // (B, n, n), zero above the diagonal
  torch::Tensor diagonal_inverse;  // (B, n / block, block, block)
};
BlockCholeskyFactor BlockCholesky(const torch::Tensor& A, int64_t block);

// A⁻¹ f = L⁻ᵀ L⁻¹ f for A = L Lᵀ, f (B, n, m), by block substitution: each
// of the 2·n / block steps is a GEMM with a diagonal block's inverse.
// cuBLAS's triangular solve walks 512 right-hand sides in 32-column panels
// (1.6 ms for the two systems of a pair on an H100, n = 1600); this takes
// 0.6 ms.
torch::Tensor BlockCholeskySolve(const BlockCholeskyFactor& factor,
                                 const torch::Tensor& f);

// The same from L alone (lower triangular): the diagonal blocks are inverted
// first, in one batched triangular solve. `block` must divide n.
torch::Tensor BlockCholeskySolve(const torch::Tensor& L,
                                 const torch::Tensor& f,
                                 int64_t block);

// exp((cos_sim(x, y) − 1) / T) for x (B, N, D), y (B, M, D) → (B, N, M).
torch::Tensor CosKernel(const torch::Tensor& x,
                        const torch::Tensor& y,
                        double T);

}  // namespace l2m
