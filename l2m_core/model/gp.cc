#include "l2m_core/model/gp.h"

#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/gp_cuda.h"
#endif

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <stdexcept>
#include <string>
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
  // The steps write the lower block triangle; nothing reads the blocks
  // above it (at 16 matrices of 1600², zeroing them took 0.26 ms, H100).
  factor.L = torch::empty_like(A, torch::MemoryFormat::Contiguous);
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

// Batches from this size on take BlockCholesky, which reads only A's lower
// triangle (smaller ones cuSOLVER's potrf, one matrix at a time).
constexpr int64_t kBlockCholeskyMinBatch = 3;

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
  if (A.size(0) >= kBlockCholeskyMinBatch) {
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

// One side's features for the kernel matrices on CUDA: tokens (B, h·w, C)
// and their float32 norms. fused: CosKernelMatrixCuda takes the tokens
// (fp16/bf16, rows contiguous: a view of channels-last features).
struct CudaTokens {
  torch::Tensor tokens;
  torch::Tensor norms;
  bool fused = false;

  CudaTokens Narrow(int64_t start, int64_t length) const {
    return {
        tokens.narrow(0, start, length), norms.narrow(0, start, length), fused};
  }
};

CudaTokens TokensCuda(const torch::Tensor& t_in) {
  auto tokens = [](const torch::Tensor& t) {
    return t.flatten(2).transpose(1, 2);
  };
  CudaTokens out;
  const bool low = t_in.scalar_type() == torch::kHalf ||
                   t_in.scalar_type() == torch::kBFloat16;
  if (low) {
    out.tokens = tokens(t_in);
    if (!internal::CosKernelMatrixSupported(out.tokens) &&
        t_in.size(1) % 64 == 0) {
      out.tokens = out.tokens.contiguous();
    }
    if (internal::CosKernelMatrixSupported(out.tokens)) {
      out.norms = internal::RowNormsCuda(out.tokens);
      out.fused = true;
      return out;
    }
    if (DotsTakeLowPrecision(t_in, t_in)) {
      // The norms reduce over the channels of the (B, D, h·w) view: the
      // same reduction over the tokens' strided rows took 0.57 ms at 16
      // images (H100), 20× the bytes' time.
      out.norms =
          at::linalg_vector_norm(t_in.flatten(2), 2, {1}, false, torch::kFloat)
              .contiguous();
      return out;
    }
  }
  out.tokens = tokens(t_in.to(torch::kFloat));
  out.norms = out.tokens.norm(2, -1).contiguous();
  return out;
}

// exp((cos_sim(a, b) − 1) / T) (+ sigma I) on CUDA: in one kernel where
// CosKernelMatrixCuda takes the tokens, else a GEMM and one pass over its
// output (CosKernelFromDotsCuda, bit-equal to CosKernel's passes). The
// fp16/bf16 products are exact in float32, so either computes what the
// reference's float32 GEMM on the widened features does, up to the order of
// the sums (GpCuda tests), without widened copies. lower_only: only the lower
// triangle need be written.
torch::Tensor KernelMatrixCuda(const CudaTokens& a,
                               const CudaTokens& b,
                               double T,
                               double sigma,
                               bool lower_only) {
  if (a.fused && b.fused) {
    return internal::CosKernelMatrixCuda(
        a.tokens, b.tokens, a.norms, b.norms, T, sigma, lower_only);
  }
  torch::Tensor at = a.tokens, bt = b.tokens;
  if (at.scalar_type() != torch::kFloat && !DotsTakeLowPrecision(at, bt)) {
    at = at.to(torch::kFloat);  // mixed sides: both widened
    bt = bt.to(torch::kFloat);
  }
  torch::Tensor dots = DotsFloat(at, bt.to(at.scalar_type()));
  internal::CosKernelFromDotsCuda(dots, a.norms, b.norms, T, sigma);
  return dots;
}
#endif

}  // namespace

GpImpl::GpImpl(const GpConfig& config) : config_(config) {
  pos_conv_ = register_module(
      "pos_conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(2, config.gp_dim, 1)));
}

torch::Tensor GpImpl::Basis(int64_t h,
                            int64_t w,
                            int64_t B,
                            const torch::TensorOptions& opts) {
  // The same for every image, so computed once and expanded over the batch
  // (the reference convolves a batch of identical grids: 0.5 ms at 16
  // images, H100).
  auto coords = IdentityGrid(h, w, opts);
  return torch::cos(8 * M_PI *
                    pos_conv_(coords.to(pos_conv_->weight.scalar_type()))
                        .to(torch::kFloat))
      .flatten(2)
      .transpose(1, 2)
      .expand({B, h * w, -1});
}

torch::Tensor GpImpl::forward(const torch::Tensor& x_in,
                              const torch::Tensor& y_in) {
  AutocastOff fp32;
  const int64_t B = x_in.size(0), h1 = x_in.size(2), w1 = x_in.size(3);
  const int64_t h2 = y_in.size(2), w2 = y_in.size(3);
  const auto opts = x_in.options().dtype(torch::kFloat);
  const torch::Tensor f = Basis(h2, w2, B, opts);  // b (h w) d
#ifdef L2M_HAVE_CUDA_KERNELS
  if (x_in.is_cuda() && !torch::GradMode::is_enabled()) {
    // Inference on CUDA: the kernel matrices from the features as they are
    // (KernelMatrixCuda), A's upper triangle skipped where the block
    // factorisation reads only the lower one, and the Cholesky solve (the
    // reference inverts K_yy; on CUDA the batched inverse is slow at 1600²,
    // and the solve gives the same posterior within the parity tolerance,
    // ModelParityGp).
    const CudaTokens x = TokensCuda(x_in), y = TokensCuda(y_in);
    const torch::Tensor A = KernelMatrixCuda(
        y, y, config_.T, config_.sigma_noise, B >= kBlockCholeskyMinBatch);
    const torch::Tensor K_xy = KernelMatrixCuda(x, y, config_.T, 0.0, false);
    const torch::Tensor weights = CholeskySolveCuda(A, f);
    // (B, gp_dim, h, w) as a channels-last view of μ (B, h·w, gp_dim), the
    // layout the decoder's tokens read without a copy.
    return torch::bmm(K_xy, weights).transpose(1, 2).reshape({B, -1, h1, w1});
  }
#endif
  auto tokens = [](const torch::Tensor& t) {
    return t.flatten(2).transpose(1, 2);
  };  // b (h w) d
  const torch::Tensor x = tokens(x_in.to(torch::kFloat));
  const torch::Tensor y = tokens(y_in.to(torch::kFloat));
  const torch::Tensor A =
      CosKernel(y, y, config_.T) +
      config_.sigma_noise * torch::eye(h2 * w2, opts).unsqueeze(0);
  const torch::Tensor K_xy = CosKernel(x, y, config_.T);
  torch::Tensor weights;
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

torch::Tensor GpImpl::ForwardRolled(const torch::Tensor& x_in,
                                    int64_t support_offset) {
  const int64_t B = x_in.size(0);
  if (support_offset < 0 || (support_offset > 0 && support_offset >= B)) {
    throw std::invalid_argument(
        "Gp::ForwardRolled: support_offset " + std::to_string(support_offset) +
        " is outside the batch of " + std::to_string(B));
  }
  if (support_offset == 0) return forward(x_in, x_in);
#ifdef L2M_HAVE_CUDA_KERNELS
  if (x_in.is_cuda() && !torch::GradMode::is_enabled() &&
      2 * support_offset == B) {
    AutocastOff fp32;
    const int64_t half = support_offset, h = x_in.size(2), w = x_in.size(3);
    const torch::Tensor f = Basis(h, w, B, x_in.options().dtype(torch::kFloat));
    const CudaTokens x = TokensCuda(x_in);
    // Every image's own support system, in x's order: image b then takes
    // the weights of its support, b ± half.
    const torch::Tensor A = KernelMatrixCuda(
        x, x, config_.T, config_.sigma_noise, B >= kBlockCholeskyMinBatch);
    const torch::Tensor weights = CholeskySolveCuda(A, f);
    // G_b = K(x_b, x_{b+half}) for b < half; K(x_{b+half}, x_b) = G_bᵀ.
    const torch::Tensor G = KernelMatrixCuda(
        x.Narrow(0, half), x.Narrow(half, half), config_.T, 0.0, false);
    torch::Tensor mu = torch::empty({B, h * w, f.size(2)}, f.options());
    torch::Tensor first = mu.narrow(0, 0, half);
    torch::Tensor second = mu.narrow(0, half, half);
    // b < half: μ_b = G_b W_{b+half}; b ≥ half: μ_b = G_{b−half}ᵀ W_{b−half}.
    at::bmm_out(first, G, weights.narrow(0, half, half));
    at::bmm_out(second, G.transpose(1, 2), weights.narrow(0, 0, half));
    // (B, gp_dim, h, w) as a channels-last view of μ, as forward returns it.
    return mu.transpose(1, 2).reshape({B, -1, h, w});
  }
#endif
  // Elsewhere the rolled support as a batch of its own (two copies in x's
  // layout; a cat of channels-last halves took 0.39 ms at 16 images, H100).
  const int64_t rest = B - support_offset;
  torch::Tensor y = torch::empty_like(x_in);
  y.narrow(0, 0, rest).copy_(x_in.narrow(0, support_offset, rest));
  y.narrow(0, rest, support_offset).copy_(x_in.narrow(0, 0, support_offset));
  return forward(x_in, y);
}

}  // namespace l2m
