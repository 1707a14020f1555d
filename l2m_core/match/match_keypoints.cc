#include "l2m_core/match/match_keypoints.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

namespace l2m {

void MatchKeypointsOptions::Check() const {
  if (!(max_dist > 0)) {
    throw std::invalid_argument("MatchKeypointsOptions: max_dist must be > 0");
  }
  if (chunk_rows < 1) {
    throw std::invalid_argument(
        "MatchKeypointsOptions: chunk_rows must be >= 1");
  }
}

KeypointMatches MatchKeypoints(const at::Tensor& kpts_a,
                               const at::Tensor& kpts_b,
                               const at::Tensor& warp_a_to_b,
                               const at::Tensor& certainty,
                               const MatchKeypointsOptions& options) {
  options.Check();
  if (kpts_a.dim() != 2 || kpts_a.size(1) != 2 || kpts_b.dim() != 2 ||
      kpts_b.size(1) != 2) {
    throw std::invalid_argument("MatchKeypoints: keypoints must be (N, 2)");
  }
  if (warp_a_to_b.dim() != 3 || warp_a_to_b.size(2) < 2 ||
      certainty.dim() != 2 || certainty.size(0) != warp_a_to_b.size(0) ||
      certainty.size(1) != warp_a_to_b.size(1)) {
    throw std::invalid_argument(
        "MatchKeypoints: expected warp (H, W, C >= 2) and certainty (H, W)");
  }
  const auto long_opts =
      torch::TensorOptions().dtype(torch::kInt64).device(kpts_a.device());
  const int64_t n_a = kpts_a.size(0);
  const int64_t n_b = kpts_b.size(0);
  if (n_a == 0 || n_b == 0) {
    return {torch::empty({0}, long_opts),
            torch::empty({0}, long_opts),
            torch::empty({0, 4}, kpts_a.options())};
  }

  // grid_sample(bilinear, zeros, align_corners=False) of the B position
  // channels and of the certainty at the A keypoints.
  const auto dtype = warp_a_to_b.scalar_type();
  const at::Tensor grid = kpts_a.to(dtype).view({1, 1, n_a, 2});
  const int64_t c = warp_a_to_b.size(2);
  const at::Tensor field =
      warp_a_to_b.narrow(2, c - 2, 2).permute({2, 0, 1}).unsqueeze(0);
  const at::Tensor a_to_b =
      at::grid_sampler(
          field, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false)[0]
          .select(1, 0)
          .t()
          .contiguous();  // (N_A, 2)
  const at::Tensor cert =
      at::grid_sampler(certainty.to(dtype).view(
                           {1, 1, certainty.size(0), certainty.size(1)}),
                       grid,
                       0,
                       0,
                       false)
          .view({n_a});
  const at::Tensor b = kpts_b.to(dtype).contiguous();

  // The full (N_A x N_B) matrix is never held: pass 1 finds row and column
  // minima block by block, pass 2 recomputes each block (bit-identical) and
  // keeps the entries equal to both minima.
  const int64_t mode = (n_a > 25 || n_b > 25) ? 1 : 2;  // as one full cdist
  const int64_t rows = std::min(n_a, options.chunk_rows);
  at::Tensor row_min = torch::empty({n_a}, a_to_b.options());
  at::Tensor col_min = torch::full(
      {n_b}, std::numeric_limits<double>::infinity(), a_to_b.options());
  for (int64_t s = 0; s < n_a; s += rows) {
    const int64_t e = std::min(n_a, s + rows);
    const at::Tensor d = torch::cdist(a_to_b.slice(0, s, e), b, 2.0, mode);
    row_min.slice(0, s, e).copy_(std::get<0>(d.min(1)));
    col_min = torch::minimum(col_min, std::get<0>(d.min(0)));
  }
  std::vector<at::Tensor> ia, ib;
  for (int64_t s = 0; s < n_a; s += rows) {
    const int64_t e = std::min(n_a, s + rows);
    const at::Tensor d = torch::cdist(a_to_b.slice(0, s, e), b, 2.0, mode);
    const at::Tensor keep =
        d.eq(row_min.slice(0, s, e).unsqueeze(1)) & d.eq(col_min.unsqueeze(0)) &
        (cert.slice(0, s, e) > options.cert_th).unsqueeze(1) &
        (d < options.max_dist);
    const at::Tensor nz = keep.nonzero();
    ia.push_back(nz.select(1, 0) + s);
    ib.push_back(nz.select(1, 1));
  }
  KeypointMatches out;
  out.indices_a = torch::cat(ia);
  out.indices_b = torch::cat(ib);
  out.matches = torch::cat({kpts_a.index_select(0, out.indices_a),
                            kpts_b.index_select(0, out.indices_b)},
                           1);
  return out;
}

}  // namespace l2m
