#include "l2m_core/model/gp.h"

#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/gp_cuda.h"
#endif

#include <torch/torch.h>
#include <torch/version.h>

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

BlockCholeskyFactor BlockCholesky(const torch::Tensor& A, int64_t block) {
  const int64_t B = A.size(0), n = A.size(1), k = n / block;
  if (block < 1 || n % block != 0 || A.size(2) != n) {
    throw std::invalid_argument(
        "BlockCholesky: A must be square and block must divide n");
  }
  BlockCholeskyFactor factor;
  factor.L = torch::zeros_like(A);
  factor.diagonal_inverse = torch::empty({B, k, block, block}, A.options());
  // The diagonal steps in one kernel where l2m's CUDA kernels take them.
  bool fused_diagonal = false;
#ifdef L2M_HAVE_CUDA_KERNELS
  fused_diagonal = A.is_cuda() && A.scalar_type() == torch::kFloat &&
                   block <= internal::kCholeskyInverseMaxBlock;
#endif
  const torch::Tensor eye =
      fused_diagonal ? torch::Tensor()
                     : torch::eye(block, A.options()).expand({B, block, block});
  for (int64_t i = 0; i < k; ++i) {
    const int64_t r0 = i * block, r1 = r0 + block;
    // Block column i of A less the contributions of the columns already
    // factored (left-looking: one GEMM a step, n³/3 multiply-adds in all).
    torch::Tensor column = A.slice(1, r0, n).slice(2, r0, r1);
    if (i > 0) {
      column = torch::baddbmm(
          column,
          factor.L.slice(1, r0, n).slice(2, 0, r0),
          factor.L.slice(1, r0, r1).slice(2, 0, r0).transpose(1, 2),
          1,
          -1);
    }
    torch::Tensor diagonal = factor.L.slice(1, r0, r1).slice(2, r0, r1);
    torch::Tensor inverse = factor.diagonal_inverse.select(1, i);
#ifdef L2M_HAVE_CUDA_KERNELS
    if (fused_diagonal) {
      internal::CholeskyInverseBlockCuda(
          column.slice(1, 0, block), diagonal, inverse);
    }
#endif
    if (!fused_diagonal) {
      // linalg_cholesky_ex: no host-side check, so no device sync (the GP
      // can be captured in a CUDA graph); A is positive definite by
      // construction.
      diagonal.copy_(
          std::get<0>(at::linalg_cholesky_ex(column.slice(1, 0, block))));
      inverse.copy_(
          torch::linalg_solve_triangular(diagonal, eye, /*upper=*/false));
    }
    if (i + 1 < k) {
      // The panel below: L_{>i,i} = C_{>i} D_i⁻ᵀ.
      torch::Tensor panel = factor.L.slice(1, r1, n).slice(2, r0, r1);
      at::bmm_out(panel, column.slice(1, block), inverse.transpose(1, 2));
    }
  }
  return factor;
}

torch::Tensor BlockCholeskySolve(const torch::Tensor& L,
                                 const torch::Tensor& f,
                                 int64_t block) {
  const int64_t B = L.size(0), n = L.size(1), k = n / block;
  if (block < 1 || n % block != 0) {
    throw std::invalid_argument("BlockCholeskySolve: block must divide n");
  }
  std::vector<torch::Tensor> diagonal;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t r0 = i * block, r1 = r0 + block;
    diagonal.push_back(L.slice(1, r0, r1).slice(2, r0, r1));
  }
  const torch::Tensor inverse =
      torch::linalg_solve_triangular(
          torch::stack(diagonal, 1),
          torch::eye(block, L.options()).expand({B, k, block, block}),
          /*upper=*/false)
          .contiguous();
  return BlockCholeskySolve({L, inverse}, f);
}

torch::Tensor BlockCholeskySolve(const BlockCholeskyFactor& factor,
                                 const torch::Tensor& f) {
  const torch::Tensor& L = factor.L;
  const torch::Tensor& inv = factor.diagonal_inverse;
  const int64_t n = L.size(1), k = inv.size(1), block = inv.size(2);
  if (k * block != n) {
    throw std::invalid_argument(
        "BlockCholeskySolve: diagonal inverses do not tile L");
  }
  auto rows = [&](const torch::Tensor& t, int64_t i, int64_t j) {
    return t.slice(1, i * block, j * block);
  };
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
// 8 of 200, the fastest solve on an H100 in a CUDA graph; 2304: 9 of 256).
int64_t SolveBlock(int64_t n) {
  for (int64_t k = (n + 255) / 256; k < n; ++k) {
    if (n % k == 0) return n / k;
  }
  return 1;
}

// Blocks for BlockCholesky on CUDA: the largest divisor of n that
// CholeskyInverseBlockCuda takes, a multiple of its 32 threads a row where
// one divides n (1600: 160; 2304: 128, 6.8 ms for 16 matrices against 8.2
// with 144, H100), else SolveBlock's.
int64_t FactorBlock(int64_t n) {
#ifdef L2M_HAVE_CUDA_KERNELS
  for (const int64_t step : {32, 1}) {
    for (int64_t b = internal::kCholeskyInverseMaxBlock / step * step; b >= 64;
         b -= step) {
      if (n % b == 0) return b;
    }
  }
#endif
  return SolveBlock(n);
}

// A⁻¹ f for SPD A (B, n, n) on CUDA, the fastest routes measured at
// n = 1600 with 512 right-hand sides (docs/PERFORMANCE.md, sessions 5, 6
// and 11; `l2m_kernel_bench`), all in a CUDA graph on an H100: a batch
// (16 matrices) by BlockCholesky, its diagonal steps in one kernel each
// (3.9 ms with the solve, against 6.3 for cuSOLVER's batched potrf); the
// two matrices of a single pair by cuSOLVER one by one (1.86 ms, against
// 1.97); then the block substitution.
torch::Tensor CholeskySolveCuda(const torch::Tensor& A,
                                const torch::Tensor& f) {
  if (torch::GradMode::is_enabled() &&
      (A.requires_grad() || f.requires_grad())) {
    // Training: LibTorch's own factorisation and solve, which autograd
    // follows (the block routes write into preallocated outputs).
    return torch::cholesky_solve(f, std::get<0>(at::linalg_cholesky_ex(A)));
  }
  if (A.size(0) > 2) {
    return BlockCholeskySolve(BlockCholesky(A, FactorBlock(A.size(1))), f);
  }
  std::vector<torch::Tensor> factors;
  for (int64_t b = 0; b < A.size(0); ++b) {
    // linalg_cholesky_ex: no host-side check, so no device sync.
    factors.push_back(std::get<0>(at::linalg_cholesky_ex(A[b])));
  }
  return BlockCholeskySolve(torch::stack(factors), f, SolveBlock(A.size(1)));
}

#ifdef L2M_HAVE_CUDA_KERNELS
// LibTorch >= 2.8: bmm with a float32 out_dtype for fp16/bf16 operands.
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
#define L2M_BMM_OUT_DTYPE 1
#endif

// Whether the kernel matrices' GEMMs can take x and y as they are: fp16 or
// bf16 (their products are exact in float32) into a GEMM with float32
// output.
bool DotsTakeLowPrecision(const torch::Tensor& x, const torch::Tensor& y) {
#ifdef L2M_BMM_OUT_DTYPE
  return x.is_cuda() && x.scalar_type() == y.scalar_type() &&
         (x.scalar_type() == torch::kHalf ||
          x.scalar_type() == torch::kBFloat16);
#else
  (void)x;
  (void)y;
  return false;
#endif
}

// a · bᵀ in float32 for (B, n, D) and (B, m, D) of one dtype: float32, or
// what DotsTakeLowPrecision takes.
torch::Tensor DotsFloat(const torch::Tensor& a, const torch::Tensor& b) {
#ifdef L2M_BMM_OUT_DTYPE
  if (a.scalar_type() != torch::kFloat) {
    return at::bmm(a, b.transpose(1, 2), torch::kFloat);
  }
#endif
  return torch::bmm(a, b.transpose(1, 2));
}
#endif

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
  // fp16/bf16 features go into the CUDA kernel matrices as they are (see
  // below); everything else widened to float32, as the reference does.
  bool low = false;
#ifdef L2M_HAVE_CUDA_KERNELS
  const bool cuda_inference = x_in.is_cuda() && !torch::GradMode::is_enabled();
  low = cuda_inference && DotsTakeLowPrecision(x_in, y_in);
#endif
  const torch::Tensor x = tokens(low ? x_in : x_in.to(torch::kFloat));
  const torch::Tensor y = tokens(low ? y_in : y_in.to(torch::kFloat));
  torch::Tensor A, K_xy;
#ifdef L2M_HAVE_CUDA_KERNELS
  if (cuda_inference) {
    // Inference on CUDA: each kernel matrix in one pass after its GEMM
    // (CosKernelFromDotsCuda: bit-equal to CosKernel's passes, GpCuda test).
    // The fp16/bf16 products are exact in float32, so a tensor-core GEMM
    // accumulating in float32 computes what the reference's float32 GEMM on
    // the widened features does, up to the order of the sums
    // (GpCuda.LowPrecisionInputsMatchFloatRoute), without the widened
    // copies. Their norms reduce over the channels of the (B, D, h·w) view:
    // the same reduction over the tokens' strided rows took 0.57 ms at 16
    // images (H100), 20× the bytes' time.
    auto norms = [&](const torch::Tensor& t_in, const torch::Tensor& t) {
      return low ? at::linalg_vector_norm(
                       t_in.flatten(2), 2, {1}, false, torch::kFloat)
                       .contiguous()
                 : t.norm(2, -1).contiguous();
    };
    const torch::Tensor nx = norms(x_in, x), ny = norms(y_in, y);
    auto kernel = [&](const torch::Tensor& a,
                      const torch::Tensor& b,
                      const torch::Tensor& na,
                      const torch::Tensor& nb,
                      double sigma) {
      torch::Tensor dots = DotsFloat(a, b);
      internal::CosKernelFromDotsCuda(dots, na, nb, config_.T, sigma);
      return dots;
    };
    A = kernel(y, y, ny, ny, config_.sigma_noise);
    K_xy = kernel(x, y, nx, ny, 0.0);
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
