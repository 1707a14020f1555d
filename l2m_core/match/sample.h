#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>

namespace l2m {

struct KdeOptions {
  // Gaussian kernel standard deviation in normalised coordinates.
  double std = 0.1;
  // Upper bound on the elements of one (rows x N) block of the kernel matrix;
  // the full N x N matrix (1.6e9 elements for num = 10 000) is never built.
  // 4 MiB of float32: big enough to amortise op launches, small enough to
  // stay in cache between the passes over a block.
  int64_t max_chunk_elements = int64_t{1} << 20;
  // The same bound for tensors on CUDA, where each block costs several
  // kernel launches: 64M float32 (256 MiB) keeps num = 10 000 at 7 blocks
  // instead of 400.
  int64_t max_chunk_elements_cuda = int64_t{1} << 26;
  // The reference computes the KDE in float16 (on CUDA). On CUDA this runs
  // the same ops in half; on CPU (where torch has no half cdist) it rounds the
  // inputs to half and computes in float32. Off by default: the parity
  // fixture was made with the float32 KDE.
  bool half = false;
  // On the CPU: true reproduces the reference's float32 KDE bit for bit
  // (torch.cdist's matmul form with FMA-ordered accumulation, which the
  // parity fixture needs); false computes it directly in float32 with a
  // vectorised exp (internal::KdeDensityCpu: ~1e-6 relative to the exact
  // values, many times faster). The matcher uses the fast form. Ignored on
  // CUDA (one kernel, direct form).
  bool exact = true;

  void Check() const;
};

// What Kde() did, for tests and logs.
struct KdeStats {
  int64_t num_chunks = 0;
  int64_t max_chunk_rows = 0;
  int64_t max_chunk_elements = 0;
};

// density_i = sum_j exp(-|x_i - x_j|^2 / (2 std^2)) (self included) for
// x (N, D), as romatch.utils.kde.kde. Works in row blocks against all N
// points and follows torch.cdist's algorithm choice (matmul form above 25
// rows). On CPU in float32 the matmul form is evaluated with FMA-ordered
// accumulation independent of the system BLAS, which reproduces the parity
// fixture bit-exactly; elsewhere torch::cdist is used. Returns (N) in x's
// dtype (float32 unless half on CUDA).
at::Tensor Kde(const at::Tensor& x,
               const KdeOptions& options = KdeOptions(),
               KdeStats* stats = nullptr);

struct SampleOptions {
  // "threshold_balanced" (RoMa/L2M default), "threshold" or "balanced".
  // threshold: certainty > sample_thresh counts as 1; balanced: draw 4x the
  // candidates, then thin them by inverse KDE density.
  std::string sample_mode = "threshold_balanced";
  double sample_thresh = 0.05;
  // Seed of a private generator (cloned from the device's default generator,
  // then reseeded). Unset: the global default generator, i.e. the same
  // stream as torch::manual_seed() / Python's torch.manual_seed().
  std::optional<uint64_t> seed;
  KdeOptions kde;

  void Check() const;
};

struct SampledMatches {
  at::Tensor matches;    // (n, 4) [x_A, y_A, x_B, y_B], normalised coordinates
  at::Tensor certainty;  // (n) the (thresholded) certainty of each match
  at::Tensor indices;    // (n) int64 flat index into warp.reshape({-1, 4})
};

// RegressionMatcher.sample(): warp (..., 4) (e.g. the symmetric (H, 2W, 4)),
// certainty (...) with the same leading shape. Returns min(num, candidates)
// matches, fewer only when the map is smaller than num. Throws when every
// certainty is 0.
SampledMatches Sample(const at::Tensor& warp,
                      const at::Tensor& certainty,
                      int64_t num,
                      const SampleOptions& options = SampleOptions(),
                      KdeStats* kde_stats = nullptr);

namespace internal {

// torch::multinomial(weights, n, replacement=false, gen) for 1-D weights.
// On CUDA (n ≥ 2) LibTorch's own fast path written out: topk of weights / q,
// q ~ Exp(1) (the Gumbel-max trick), so the same random numbers give the
// same indices, without the two host syncs of its weight checks (Sample
// checks once, after every kernel is queued: 0.6 ms a pair on an H100).
at::Tensor MultinomialWithoutReplacement(const at::Tensor& weights,
                                         int64_t n,
                                         c10::optional<at::Generator> gen);

}  // namespace internal

}  // namespace l2m
