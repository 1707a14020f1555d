#include "l2m_core/model/gp.h"

#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/gp_cuda.h"
#endif

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace l2m {

torch::Tensor CosKernel(const torch::Tensor& x,
                        const torch::Tensor& y,
                        double T) {
  constexpr double kEps = 1e-6;
  auto c = torch::bmm(x, y.transpose(1, 2)) /
           (x.norm(2, -1).unsqueeze(-1) * y.norm(2, -1).unsqueeze(1) + kEps);
  return ((c - 1.0) / T).exp();
}

torch::Tensor BlockCholeskySolve(const torch::Tensor& L,
                                 const torch::Tensor& f,
                                 int64_t block) {
  const int64_t B = L.size(0), n = L.size(1), k = n / block;
  if (block < 1 || n % block != 0) {
    throw std::invalid_argument("BlockCholeskySolve: block must divide n");
  }
  auto rows = [&](const torch::Tensor& t, int64_t i, int64_t j) {
    return t.slice(1, i * block, j * block);
  };
  std::vector<torch::Tensor> diagonal;
  for (int64_t i = 0; i < k; ++i) {
    diagonal.push_back(rows(L, i, i + 1).slice(2, i * block, (i + 1) * block));
  }
  // (B, k, block, block): the inverses of the diagonal blocks.
  const torch::Tensor inv =
      torch::linalg_solve_triangular(
          torch::stack(diagonal, 1),
          torch::eye(block, L.options()).expand({B, k, block, block}),
          /*upper=*/false)
          .contiguous();
  // L y = f, top down: y_i = D_i⁻¹ (f_i − L_{i,<i} y_{<i}).
  torch::Tensor y = torch::empty_like(f);
  for (int64_t i = 0; i < k; ++i) {
    torch::Tensor r = rows(f, i, i + 1);
    if (i > 0) {
      r = torch::baddbmm(
          r, rows(L, i, i + 1).slice(2, 0, i * block), rows(y, 0, i), 1, -1);
    }
    torch::Tensor out = rows(y, i, i + 1);
    at::bmm_out(out, inv.select(1, i), r);
  }
  // Lᵀ x = y, bottom up: x_i = D_i⁻ᵀ (y_i − (L_{>i,i})ᵀ x_{>i}).
  torch::Tensor x = torch::empty_like(f);
  for (int64_t i = k - 1; i >= 0; --i) {
    torch::Tensor r = rows(y, i, i + 1);
    if (i < k - 1) {
      r = torch::baddbmm(r,
                         rows(L, i + 1, k)
                             .slice(2, i * block, (i + 1) * block)
                             .transpose(1, 2),
                         rows(x, i + 1, k),
                         1,
                         -1);
    }
    torch::Tensor out = rows(x, i, i + 1);
    at::bmm_out(out, inv.select(1, i).transpose(1, 2), r);
  }
  return x;
}

namespace {

// Diagonal blocks of at most 256 rows for BlockCholeskySolve (n = 1600:
// 8 of 200, the fastest on an H100 in a CUDA graph; 2304: 9 of 256).
int64_t SolveBlock(int64_t n) {
  for (int64_t k = (n + 255) / 256; k < n; ++k) {
    if (n % k == 0) return n / k;
  }
  return 1;
}

// A⁻¹ f for SPD A (B, n, n) on CUDA, the fastest routes measured at
// n = 1600 with 512 right-hand sides (docs/PERFORMANCE.md, sessions 5–6):
// one or two matrices (a single pair) are factored one by one (batched
// cuSOLVER took 7.6 ms against 2.8 for two; two streams gained nothing),
// more in one batch; then BlockCholeskySolve (H100: 1.5 ms for two systems,
// 0.6 in a CUDA graph, against 1.7 for cholesky_solve; 2.0 against 3.2 ms
// for cuBLAS's triangular solves at 16).
torch::Tensor CholeskySolveCuda(const torch::Tensor& A,
                                const torch::Tensor& f) {
  torch::Tensor L;
  if (A.size(0) <= 2) {
    std::vector<torch::Tensor> factors;
    for (int64_t b = 0; b < A.size(0); ++b) {
      factors.push_back(std::get<0>(at::linalg_cholesky_ex(A[b])));
    }
    L = torch::stack(factors);
  } else {
    // A is symmetric, so Aᵀ (a column-major view) has the same factor, and
    // LibTorch's column-major working copy of it is a straight copy rather
    // than a transposing one.
    L = std::get<0>(at::linalg_cholesky_ex(A.transpose(-2, -1)));
  }
  return BlockCholeskySolve(L, f, SolveBlock(A.size(1)));
}

}  // namespace

GpImpl::GpImpl(const GpConfig& config) : config_(config) {
  pos_conv_ = register_module(
      "pos_conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(2, config.gp_dim, 1)));
}

torch::Tensor GpImpl::forward(const torch::Tensor& x_in,
                              const torch::Tensor& y_in) {
  AutocastOff fp32;
  const int64_t B = x_in.size(0), h1 = x_in.size(2), w1 = x_in.size(3);
  const int64_t h2 = y_in.size(2), w2 = y_in.size(3);
  const auto opts = x_in.options().dtype(torch::kFloat);
  auto tokens = [](const torch::Tensor& t) {
    return t.flatten(2).transpose(1, 2);
  };  // b (h w) d
  // Fourier basis of the support cells' positions: the same for every
  // image, so computed once and expanded over the batch (the reference
  // convolves a batch of identical grids: 0.5 ms at 16 images, H100).
  auto coords = IdentityGrid(h2, w2, opts);
  auto f =
      tokens(torch::cos(8 * M_PI *
                        pos_conv_(coords.to(pos_conv_->weight.scalar_type()))
                            .to(torch::kFloat)))
          .expand({B, h2 * w2, -1});
  auto x = tokens(x_in.to(torch::kFloat));
  auto y = tokens(y_in.to(torch::kFloat));
  torch::Tensor A, K_xy;
#ifdef L2M_HAVE_CUDA_KERNELS
  if (x.is_cuda() && !torch::GradMode::is_enabled()) {
    // Inference on CUDA: each kernel matrix in one pass after its GEMM,
    // bit-equal to the unfused form below (GpCuda test).
    auto kernel =
        [&](const torch::Tensor& a, const torch::Tensor& b, double sigma) {
          torch::Tensor dots = torch::bmm(a, b.transpose(1, 2));
          internal::CosKernelFromDotsCuda(dots,
                                          a.norm(2, -1).contiguous(),
                                          b.norm(2, -1).contiguous(),
                                          config_.T,
                                          sigma);
          return dots;
        };
    A = kernel(y, y, config_.sigma_noise);
    K_xy = kernel(x, y, 0.0);
  }
#endif
  if (!A.defined()) {
    A = CosKernel(y, y, config_.T) +
        config_.sigma_noise * torch::eye(h2 * w2, opts).unsqueeze(0);
    K_xy = CosKernel(x, y, config_.T);
  }
  torch::Tensor weights;
  // The reference inverts K_yy; on CUDA the batched inverse (MAGMA) is slow
  // at 1600² and a Cholesky solve gives the same posterior within the parity
  // tolerance (ModelParityGp test), so CUDA always takes it.
  if (config_.use_cholesky || A.is_cuda()) {
    // linalg_cholesky_ex: no host-side error check, so no device sync (the
    // decoder can be captured in a CUDA graph); A = K + sigma I is positive
    // definite by construction.
    weights = A.is_cuda() ? CholeskySolveCuda(A, f)
                          : torch::cholesky_solve(
                                f, std::get<0>(at::linalg_cholesky_ex(A)));
  } else {
    weights = torch::matmul(torch::linalg_inv(A), f);
  }
  auto mu = torch::matmul(K_xy, weights);  // (B, h1·w1, D)
  return mu.transpose(1, 2).reshape({B, -1, h1, w1});
}

}  // namespace l2m
