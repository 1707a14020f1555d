#include "l2m_core/match/match_keypoints.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <utility>

namespace l2m {
namespace {

// A->B warp (H, W, 4) of B = A + (tx, ty) in normalised coordinates; bilinear
// sampling of this affine field is exact inside the image.
torch::Tensor ShiftWarp(int64_t h, int64_t w, double tx, double ty) {
  const torch::Tensor ys =
      torch::linspace(-1 + 1.0 / h, 1 - 1.0 / h, h, torch::kFloat64);
  const torch::Tensor xs =
      torch::linspace(-1 + 1.0 / w, 1 - 1.0 / w, w, torch::kFloat64);
  const auto g = torch::meshgrid({ys, xs}, "ij");
  return torch::stack({g[1], g[0], g[1] + tx, g[0] + ty}, -1)
      .to(torch::kFloat32);
}

std::set<std::pair<int64_t, int64_t>> Pairs(const KeypointMatches& m) {
  std::set<std::pair<int64_t, int64_t>> out;
  for (int64_t k = 0; k < m.indices_a.numel(); ++k) {
    out.insert(
        {m.indices_a[k].item<int64_t>(), m.indices_b[k].item<int64_t>()});
  }
  return out;
}

// Direct statement of the reference on the full distance matrix.
std::set<std::pair<int64_t, int64_t>> ReferencePairs(const torch::Tensor& a,
                                                     const torch::Tensor& b,
                                                     const torch::Tensor& warp,
                                                     const torch::Tensor& cert,
                                                     double max_dist,
                                                     double cert_th) {
  namespace F = torch::nn::functional;
  const auto gs =
      F::GridSampleFuncOptions().mode(torch::kBilinear).align_corners(false);
  const torch::Tensor grid = a.view({1, 1, -1, 2});
  const torch::Tensor a2b =
      F::grid_sample(
          warp.narrow(-1, 2, 2).permute({2, 0, 1}).unsqueeze(0), grid, gs)[0]
          .select(1, 0)
          .t();
  const torch::Tensor c =
      F::grid_sample(cert.view({1, 1, cert.size(0), cert.size(1)}), grid, gs)
          .view({-1});
  const torch::Tensor d = torch::cdist(a2b, b);
  const torch::Tensor keep = (d == std::get<0>(d.min(-1, true))) &
                             (d == std::get<0>(d.min(-2, true))) &
                             (c.unsqueeze(1) > cert_th) & (d < max_dist);
  const torch::Tensor nz = keep.nonzero();
  std::set<std::pair<int64_t, int64_t>> out;
  for (int64_t k = 0; k < nz.size(0); ++k) {
    out.insert({nz[k][0].item<int64_t>(), nz[k][1].item<int64_t>()});
  }
  return out;
}

TEST(MatchKeypoints, KnownShiftMatchesPermutedKeypoints) {
  const int64_t h = 30, w = 40;
  const double tx = 0.1, ty = -0.05;
  const torch::Tensor warp = ShiftWarp(h, w, tx, ty);
  const torch::Tensor cert = torch::full({h, w}, 0.7f);
  // Interior A keypoints (off the pixel grid), B = A + t, shuffled; plus B
  // distractors and one A keypoint whose target has no B keypoint.
  torch::manual_seed(0);
  const torch::Tensor a = torch::rand({50, 2}) * 1.2f - 0.7f;
  const torch::Tensor perm = torch::randperm(50);
  torch::Tensor b =
      (a + torch::tensor({tx, ty}).to(torch::kFloat32)).index_select(0, perm);
  b = torch::cat({b, torch::tensor({{0.95f, 0.95f}, {-0.95f, 0.9f}})});
  const torch::Tensor a_extra = torch::cat({a, torch::tensor({{0.5f, -0.9f}})});

  const KeypointMatches m = MatchKeypoints(a_extra, b, warp, cert);
  ASSERT_EQ(m.indices_a.numel(), 50);
  // perm[j] = i means b[j] = a[i] + t.
  for (int64_t k = 0; k < 50; ++k) {
    const int64_t i = m.indices_a[k].item<int64_t>();
    const int64_t j = m.indices_b[k].item<int64_t>();
    EXPECT_EQ(perm[j].item<int64_t>(), i);
  }
  // Row-major order, as torch.nonzero on the full matrix.
  EXPECT_TRUE(torch::equal(m.indices_a, torch::arange(50)));
  EXPECT_TRUE(torch::equal(m.matches.narrow(1, 0, 2), a));
  EXPECT_TRUE(
      torch::equal(m.matches.narrow(1, 2, 2), b.index_select(0, m.indices_b)));
}

TEST(MatchKeypoints, MutualityDistanceAndCertainty) {
  const int64_t h = 20, w = 20;
  const torch::Tensor warp = ShiftWarp(h, w, 0.0, 0.0);  // identity
  torch::Tensor cert = torch::full({h, w}, 0.5f);
  cert.narrow(1, 0, 10).zero_();  // left half (x < 0) uncertain
  // A0 and A1 both land near B0; only the closer (A1) is mutual.
  // A2 -> B1 at distance 0.004 (< 0.005): kept. A3 -> B2 at 0.006: dropped.
  // A4 is in the zero-certainty half: dropped with cert_th = 0 (strict >).
  const torch::Tensor a = torch::tensor({{0.30f, 0.30f},
                                         {0.301f, 0.30f},
                                         {0.5f, -0.5f},
                                         {0.6f, 0.6f},
                                         {-0.5f, 0.2f}});
  const torch::Tensor b = torch::tensor(
      {{0.3015f, 0.30f}, {0.504f, -0.5f}, {0.606f, 0.6f}, {-0.5f, 0.2f}});
  const KeypointMatches m = MatchKeypoints(a, b, warp, cert);
  EXPECT_EQ(Pairs(m), (std::set<std::pair<int64_t, int64_t>>{{1, 0}, {2, 1}}));

  MatchKeypointsOptions loose;
  loose.max_dist = 0.01;
  loose.cert_th = -1;  // certainty 0 passes
  EXPECT_EQ(
      Pairs(MatchKeypoints(a, b, warp, cert, loose)),
      (std::set<std::pair<int64_t, int64_t>>{{1, 0}, {2, 1}, {3, 2}, {4, 3}}));
  MatchKeypointsOptions strict;
  strict.cert_th = 0.6;  // every certainty is <= 0.5
  EXPECT_TRUE(Pairs(MatchKeypoints(a, b, warp, cert, strict)).empty());
}

TEST(MatchKeypoints, ChunkedEqualsReferenceOnRandomData) {
  torch::manual_seed(1);
  const int64_t h = 24, w = 32;
  // A smooth random warp and random certainty.
  torch::Tensor warp = ShiftWarp(h, w, 0.02, 0.01);
  warp.narrow(-1, 2, 2).add_(torch::randn({h, w, 2}) * 0.01f);
  const torch::Tensor cert = torch::rand({h, w});
  const torch::Tensor a = torch::rand({300, 2}) * 2 - 1;
  const torch::Tensor b = torch::rand({400, 2}) * 2 - 1;
  const auto ref = ReferencePairs(a, b, warp, cert, 0.02, 0.2);
  ASSERT_GT(ref.size(), 5u);
  for (int64_t rows : {1, 7, 64, 4096}) {
    MatchKeypointsOptions o;
    o.max_dist = 0.02;
    o.cert_th = 0.2;
    o.chunk_rows = rows;
    EXPECT_EQ(Pairs(MatchKeypoints(a, b, warp, cert, o)), ref)
        << "chunk_rows " << rows;
  }
}

TEST(MatchKeypoints, EmptyAndInvalidInputs) {
  const torch::Tensor warp = ShiftWarp(4, 4, 0, 0);
  const torch::Tensor cert = torch::ones({4, 4});
  const KeypointMatches m =
      MatchKeypoints(torch::zeros({0, 2}), torch::zeros({3, 2}), warp, cert);
  EXPECT_EQ(m.indices_a.numel(), 0);
  EXPECT_EQ(m.matches.sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_THROW(
      MatchKeypoints(torch::zeros({2, 3}), torch::zeros({3, 2}), warp, cert),
      std::invalid_argument);
  EXPECT_THROW(MatchKeypoints(torch::zeros({2, 2}),
                              torch::zeros({3, 2}),
                              warp,
                              torch::ones({4, 5})),
               std::invalid_argument);
  MatchKeypointsOptions o;
  o.max_dist = 0;
  EXPECT_THROW(o.Check(), std::invalid_argument);
}

}  // namespace
}  // namespace l2m
