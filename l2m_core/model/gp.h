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

// A⁻¹ f = L⁻ᵀ L⁻¹ f for A = L Lᵀ, L (B, n, n) lower triangular, f (B, n, m),
// by block substitution: the n / `block` diagonal blocks are inverted in one
// batched triangular solve, then each of the 2·n / `block` steps is a GEMM.
// cuBLAS's triangular solve walks 512 right-hand sides in 32-column panels
// (1.6 ms for the two systems of a pair on an H100, n = 1600); this takes
// 0.6 ms. `block` must divide n.
torch::Tensor BlockCholeskySolve(const torch::Tensor& L,
                                 const torch::Tensor& f,
                                 int64_t block);

// exp((cos_sim(x, y) − 1) / T) for x (B, N, D), y (B, M, D) → (B, N, M).
torch::Tensor CosKernel(const torch::Tensor& x,
                        const torch::Tensor& y,
                        double T);

}  // namespace l2m
