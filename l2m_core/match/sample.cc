#include "l2m_core/match/sample.h"

#include "l2m_core/match/kde_cpu.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/match/kde_cuda.h"
#endif

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace l2m {
namespace {

// torch::cdist picks the matmul form (|a|^2 + |b|^2 - 2ab) when either side
// has more than 25 rows. Deciding from the full sizes keeps every row block
// on the path the reference's single cdist took.
int64_t CdistMode(int64_t rows_a, int64_t rows_b) {
  return (rows_a > 25 || rows_b > 25) ? 1 /*use_mm_for_euclid_dist*/
                                      : 2 /*donot_use_mm_for_euclid_dist*/;
}

c10::optional<at::Generator> MakeGenerator(const std::optional<uint64_t>& seed,
                                           const at::Device& device) {
  if (!seed) {
    return c10::nullopt;
  }
  // Clone the device's default generator to get the right kind (CPU or CUDA)
  // without CUDA headers, then reseed: same state as a fresh
  // torch.Generator(device).manual_seed(seed).
  at::Generator default_gen = at::globalContext().defaultGenerator(device);
  at::Generator gen;
  {
    std::lock_guard<std::mutex> lock(default_gen.mutex());
    gen = default_gen.clone();
  }
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(*seed);
  return gen;
}

}  // namespace

namespace internal {

at::Tensor MultinomialWithoutReplacement(const at::Tensor& weights,
                                         int64_t n,
                                         c10::optional<at::Generator> gen) {
  if (!weights.is_cuda() || n < 2) {
    return torch::multinomial(weights, n, /*replacement=*/false, gen);
  }
  at::Tensor q = at::empty_like(weights).exponential_(1, gen);
  at::div_out(q, weights, q);
  return std::get<1>(at::topk(q, n));
}

}  // namespace internal

void KdeOptions::Check() const {
  if (!(std > 0)) {
    throw std::invalid_argument("KdeOptions: std must be > 0");
  }
  if (max_chunk_elements < 1 || max_chunk_elements_cuda < 1) {
    throw std::invalid_argument("KdeOptions: max_chunk_elements must be >= 1");
  }
}

void SampleOptions::Check() const {
  if (sample_mode != "threshold_balanced" && sample_mode != "threshold" &&
      sample_mode != "balanced") {
    throw std::invalid_argument("SampleOptions: unknown sample_mode '" +
                                sample_mode +
                                "' (threshold_balanced, threshold, balanced)");
  }
  if (!(sample_thresh >= 0 && sample_thresh <= 1)) {
    throw std::invalid_argument(
        "SampleOptions: sample_thresh must be in [0, 1]");
  }
  kde.Check();
}

namespace {

// out[i][j] = -cdist(x_i, x_j)^2 for torch.cdist's matmul form, where the
// dot product sum_k a[i][k] * bt[k][j] is accumulated k = 0, 1, ... with one
// fused multiply-add per term, i.e. what an FMA sgemm kernel (OpenBLAS on
// AVX2, cuBLAS) returns. Computed as exact double products rounded to float
// after each add, so the result does not depend on the BLAS this machine
// happens to use (Debian's ATLAS rounds each product separately: up to 2e-5
// relative off the reference KDE).
void NegSquaredCdistRows(const float* a,
                         int64_t k,
                         const float* bt,
                         int64_t n,
                         int64_t rows,
                         float* out) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* o = out + i * n;
      std::fill(o, o + n, 0.0f);
      for (int64_t kk = 0; kk < k; ++kk) {
        const double aik = a[i * k + kk];
        const float* b = bt + kk * n;
        for (int64_t j = 0; j < n; ++j) {
          o[j] = static_cast<float>(aik * static_cast<double>(b[j]) +
                                    static_cast<double>(o[j]));
        }
      }
      // Then cdist's clamp_min(0).sqrt() and the KDE's -(d ** 2), while the
      // row is in cache; each step rounds to float exactly as torch's kernels.
      for (int64_t j = 0; j < n; ++j) {
        const float d = std::sqrt(o[j] < 0.0f ? 0.0f : o[j]);
        o[j] = -(d * d);
      }
    }
  });
}

// The stats of a KDE computed in one pass without materialised blocks.
void SinglePassStats(int64_t n, KdeStats* stats) {
  if (stats == nullptr) return;
  *stats = KdeStats();
  stats->num_chunks = n > 0 ? 1 : 0;
  stats->max_chunk_rows = n;
}

}  // namespace

at::Tensor Kde(const at::Tensor& x_in,
               const KdeOptions& options,
               KdeStats* stats) {
  options.Check();
  if (x_in.dim() != 2) {
    throw std::invalid_argument("Kde: expected an (N, D) tensor");
  }
  at::Tensor x = x_in.is_floating_point() ? x_in : x_in.to(torch::kFloat32);
  if (options.half) {
    x = x.is_cuda() ? x.to(torch::kHalf)
                    : x.to(torch::kHalf).to(torch::kFloat32);
  }
  x = x.contiguous();
  const int64_t n = x.size(0);
  // 2 * std**2 as the reference writes it (Python double arithmetic).
  const double denom = 2.0 * (options.std * options.std);
#ifdef L2M_HAVE_CUDA_KERNELS
  if (x.is_cuda() && x.size(1) >= 1 && x.size(1) <= 8) {
    // One kernel, no block of the kernel matrix in memory (9 -> <1 ms for
    // 20 000 candidates on an H100); the same sums up to fp32 rounding.
    SinglePassStats(n, stats);
    return internal::KdeDensityCuda(x, 1.0 / denom).to(x.scalar_type());
  }
#endif
  if (!options.exact && x.device().is_cpu() && x.size(1) >= 1 &&
      x.size(1) <= 8) {
    const at::Tensor cols = x.to(torch::kFloat32).t().contiguous();  // (D, N)
    std::vector<const float*> ptrs;
    for (int64_t k = 0; k < cols.size(0); ++k) {
      ptrs.push_back(cols.data_ptr<float>() + k * n);
    }
    at::Tensor density = torch::empty({n}, cols.options());
    internal::KdeDensityCpu(ptrs.data(),
                            static_cast<int>(ptrs.size()),
                            n,
                            static_cast<float>(1.0 / denom),
                            density.data_ptr<float>());
    SinglePassStats(n, stats);
    return density.to(x.scalar_type());
  }
  at::Tensor density = torch::empty({n}, x.options());
  KdeStats local;
  if (n > 0) {
    const int64_t budget = x.is_cuda() ? options.max_chunk_elements_cuda
                                       : options.max_chunk_elements;
    const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(n, budget / n));
    const int64_t mode = CdistMode(n, n);
    // The matmul form of torch.cdist (_euclidean_dist): rows
    // [-2x, |x|^2, 1] . [x, 1, |x|^2]; norms by the same torch ops.
    const bool own_gemm =
        mode == 1 && x.device().is_cpu() && x.scalar_type() == torch::kFloat32;
    at::Tensor lhs, rhs_t;
    if (own_gemm) {
      const at::Tensor norm = x.pow(2).sum(-1, /*keepdim=*/true);
      const at::Tensor ones = torch::ones_like(norm);
      lhs = torch::cat({x.mul(-2), norm, ones}, -1).contiguous();
      rhs_t = torch::cat({x, ones, norm}, -1).t().contiguous();
    }
    for (int64_t start = 0; start < n; start += rows) {
      const int64_t end = std::min(n, start + rows);
      at::Tensor scores;
      if (own_gemm) {
        scores = torch::empty({end - start, n}, x.options());
        NegSquaredCdistRows(lhs.data_ptr<float>() + start * lhs.size(1),
                            lhs.size(1),
                            rhs_t.data_ptr<float>(),
                            n,
                            end - start,
                            scores.data_ptr<float>());
      } else {
        scores = torch::cdist(x.slice(0, start, end), x, 2.0, mode);
        scores.pow_(2).neg_();
      }
      // (-(d ** 2) / (2 std^2)).exp(), in place to keep one block alive.
      scores.div_(denom).exp_();
      density.slice(0, start, end).copy_(scores.sum(-1));
      ++local.num_chunks;
      local.max_chunk_rows = std::max(local.max_chunk_rows, end - start);
      local.max_chunk_elements =
          std::max(local.max_chunk_elements, scores.numel());
    }
  }
  if (stats != nullptr) {
    *stats = local;
  }
  return density;
}

SampledMatches Sample(const at::Tensor& warp,
                      const at::Tensor& certainty,
                      int64_t num,
                      const SampleOptions& options,
                      KdeStats* kde_stats) {
  options.Check();
  if (num < 1) {
    throw std::invalid_argument("Sample: num must be >= 1");
  }
  if (warp.dim() < 1 || warp.size(-1) != 4 ||
      warp.numel() / 4 != certainty.numel()) {
    throw std::invalid_argument(
        "Sample: expected warp (..., 4) and certainty (...) of the same "
        "pixels");
  }
  const bool threshold =
      options.sample_mode.find("threshold") != std::string::npos;
  const bool balanced =
      options.sample_mode.find("balanced") != std::string::npos;

  at::Tensor cert = certainty.reshape({-1});
  if (threshold) {
    // Everything above the threshold is equally good.
    cert = cert.clone();
    cert.masked_fill_(cert > options.sample_thresh, 1);
  }
  const at::Tensor matches = warp.reshape({-1, 4});
  // torch::multinomial checks its weights itself, on CUDA with two host
  // syncs a call; there Sample draws without them and checks the weights
  // once, at the end, after every kernel is queued. On the CPU only the
  // sum is checked up front, for this message.
  const bool cuda = cert.is_cuda();
  auto check = [&] {
    if (cuda) {
      const at::Tensor ok =
          torch::stack({(cert >= 0).all(), at::isfinite(cert).all()})
              .to(torch::kCPU);
      if (!(ok[0].item<bool>() && ok[1].item<bool>())) {
        throw std::runtime_error(
            "Sample: certainties must be finite and non-negative");
      }
    }
    if (!(cert.sum().item<double>() > 0)) {
      throw std::runtime_error(
          "Sample: every certainty is 0, nothing to sample");
    }
  };
  if (!cuda) check();

  c10::optional<at::Generator> gen = MakeGenerator(options.seed, cert.device());
  const int64_t n = cert.numel();
  const int64_t expansion = balanced ? 4 : 1;
  const at::Tensor good = internal::MultinomialWithoutReplacement(
      cert, std::min(expansion * num, n), gen);
  at::Tensor good_matches = matches.index_select(0, good);
  at::Tensor good_cert = cert.index_select(0, good);
  if (!balanced) {
    if (kde_stats != nullptr) {
      *kde_stats = KdeStats();
    }
    if (cuda) check();
    return {good_matches, good_cert, good};
  }

  const at::Tensor density = Kde(good_matches, options.kde, kde_stats);
  // 1 / (density + 1) as Python evaluates it (reciprocal, then * 1).
  at::Tensor p = (density + 1).reciprocal();
  // Points with fewer than ~10 close neighbours are likely outliers.
  p.masked_fill_(density < 10, 1e-7);
  const at::Tensor chosen = internal::MultinomialWithoutReplacement(
      p, std::min(num, good.numel()), gen);
  if (cuda) check();
  return {good_matches.index_select(0, chosen),
          good_cert.index_select(0, chosen),
          good.index_select(0, chosen)};
}

}  // namespace l2m
