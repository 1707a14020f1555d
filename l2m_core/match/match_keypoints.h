#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace l2m {

struct MatchKeypointsOptions {
  // Mutual nearest neighbours farther apart than this (normalised
  // coordinates of B) are dropped.
  double max_dist = 0.005;
  // Keep a match only where the warped certainty is > cert_th.
  double cert_th = 0.0;
  // Rows of A per block of the (N_A x N_B) distance matrix (memory bound).
  int64_t chunk_rows = 4096;

  void Check() const;
};

struct KeypointMatches {
  at::Tensor indices_a;  // (K) int64 into kpts_a
  at::Tensor indices_b;  // (K) int64 into kpts_b
  at::Tensor matches;    // (K, 4) [kpts_a[i], kpts_b[j]] (normalised)
};

// RegressionMatcher.match_keypoints(): samples the A->B warp at the A
// keypoints (bilinear grid_sample, zero padding, align_corners=False), then
// keeps mutual nearest neighbours among the B keypoints with distance <
// max_dist and certainty > cert_th. Pairs come in row-major (i, j) order;
// ties are all kept, as in the reference.
//
// kpts_a (N_A, 2), kpts_b (N_B, 2): normalised coordinates. warp_a_to_b:
// (H, W, C >= 2), the last two channels are the B position of each A pixel
// (e.g. the A half of the symmetric warp, see SplitSymmetricWarp).
// certainty: (H, W).
KeypointMatches MatchKeypoints(
    const at::Tensor& kpts_a,
    const at::Tensor& kpts_b,
    const at::Tensor& warp_a_to_b,
    const at::Tensor& certainty,
    const MatchKeypointsOptions& options = MatchKeypointsOptions());

}  // namespace l2m
