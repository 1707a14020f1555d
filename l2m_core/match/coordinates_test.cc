#include "l2m_core/match/coordinates.h"

#include "l2m_core/match/warp_matches.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace l2m {
namespace {

// Pixel centre i of n in normalised coordinates (align_corners=False).
double Centre(int64_t i, int64_t n) { return -1.0 + (2.0 * i + 1.0) / n; }

TEST(Coordinates, PixelCentresMapToHalfIntegers) {
  const int64_t h = 480, w = 640;
  const torch::Tensor c = torch::tensor({{Centre(0, w), Centre(0, h)},
                                         {Centre(w - 1, w), Centre(h - 1, h)},
                                         {-1.0, -1.0},
                                         {1.0, 1.0},
                                         {0.0, 0.0}},
                                        torch::kFloat64);
  const torch::Tensor px = ToPixelCoordinates(c, h, w);
  const torch::Tensor expected = torch::tensor({{0.5, 0.5},
                                                {w - 0.5, h - 0.5},
                                                {0.0, 0.0},
                                                {1.0 * w, 1.0 * h},
                                                {w / 2.0, h / 2.0}},
                                               torch::kFloat64);
  EXPECT_TRUE(torch::allclose(px, expected, 0, 1e-9)) << px;
  EXPECT_TRUE(torch::allclose(ToNormalizedCoordinates(px, h, w), c, 0, 1e-12));
}

TEST(Coordinates, RoundTripAnyShapeFloat32) {
  const torch::Tensor c = torch::rand({3, 5, 2}) * 2 - 1;
  const torch::Tensor px = ToPixelCoordinates(c, 618, 640);
  ASSERT_EQ(px.sizes(), c.sizes());
  EXPECT_EQ(px.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(
      torch::allclose(ToNormalizedCoordinates(px, 618, 640), c, 0, 1e-6));
  // x uses W, y uses H (non-square on purpose).
  EXPECT_NEAR(
      px[1][2][0].item<float>(), 320 * (c[1][2][0].item<float>() + 1), 1e-3);
  EXPECT_NEAR(
      px[1][2][1].item<float>(), 309 * (c[1][2][1].item<float>() + 1), 1e-3);
  EXPECT_THROW(ToPixelCoordinates(torch::zeros({4, 3}), 10, 10),
               std::invalid_argument);
}

TEST(Coordinates, MatchesUseEachImageSize) {
  const torch::Tensor m = torch::tensor({{-1.0f, 1.0f, 1.0f, -1.0f}});
  const torch::Tensor px = MatchesToPixelCoordinates(m, 480, 640, 640, 618);
  EXPECT_TRUE(torch::equal(px, torch::tensor({{0.0f, 480.0f, 618.0f, 0.0f}})));
}

// A symmetric warp of a known mapping: B = A shifted right by 2 network
// pixels (A->B), and the inverse for the B half.
void MakeShiftWarp(int64_t h,
                   int64_t w,
                   torch::Tensor* warp,
                   torch::Tensor* cert) {
  *warp = torch::zeros({h, 2 * w, 4});
  *cert = torch::zeros({h, 2 * w});
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const float gx = Centre(x, w), gy = Centre(y, h), sx = Centre(x + 2, w);
      (*warp)[y][x] = torch::tensor({gx, gy, sx, gy});
      (*cert)[y][x] = x + 2 < w ? 0.9f : 0.0f;
      const float bx = Centre(x - 2, w);
      (*warp)[y][w + x] = torch::tensor({bx, gy, gx, gy});
      (*cert)[y][w + x] = x >= 2 ? 0.8f : 0.0f;
    }
  }
}

TEST(WarpMatches, SplitSymmetricWarpIsViews) {
  torch::Tensor warp, cert;
  MakeShiftWarp(3, 5, &warp, &cert);
  const WarpHalves halves = SplitSymmetricWarp(warp, cert);
  ASSERT_EQ(halves.warp_a_to_b.sizes(), (std::vector<int64_t>{3, 5, 4}));
  ASSERT_EQ(halves.certainty_b_to_a.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(halves.warp_b_to_a.data_ptr<float>(), warp[0][5].data_ptr<float>());
  EXPECT_FLOAT_EQ(halves.certainty_a_to_b[1][2].item<float>(), 0.9f);
  EXPECT_FLOAT_EQ(halves.certainty_b_to_a[1][2].item<float>(), 0.8f);
  EXPECT_THROW(
      SplitSymmetricWarp(torch::zeros({3, 5, 4}), torch::zeros({3, 5})),
      std::invalid_argument);
}

TEST(WarpMatches, DenseWarpGivesOriginalImagePixels) {
  // Network resolution 4x8; originals A 40x80 (10x), B 20x160 (5x / 20x).
  torch::Tensor warp, cert;
  MakeShiftWarp(4, 8, &warp, &cert);
  const PixelMatches pm =
      DenseWarpToPixelMatches(warp, cert, {40, 80}, {20, 160}, 0.5);
  // 4 rows x 6 valid columns in each half.
  ASSERT_EQ(pm.points_a.size(0), 48);
  ASSERT_EQ(pm.points_b.size(0), 48);
  ASSERT_EQ(pm.certainty.size(0), 48);
  // First A->B match: A pixel (0, 0) of the network grid -> centre of the
  // 10x10 block (5, 5) in A; B = network pixel (2, 0) -> (2.5*20, 0.5*5).
  EXPECT_NEAR(pm.points_a[0][0].item<float>(), 5.0f, 1e-4);
  EXPECT_NEAR(pm.points_a[0][1].item<float>(), 5.0f, 1e-4);
  EXPECT_NEAR(pm.points_b[0][0].item<float>(), 50.0f, 1e-4);
  EXPECT_NEAR(pm.points_b[0][1].item<float>(), 2.5f, 1e-4);
  // Every match is the same shift: 2 network pixels = 40 B pixels vs 20 A
  // pixels.
  const torch::Tensor dx = pm.points_b.select(1, 0) / 20 -
                           pm.points_a.select(1, 0) / 10;  // in network px
  EXPECT_TRUE(torch::allclose(dx, torch::full_like(dx, 2.0), 0, 1e-4)) << dx;
  EXPECT_TRUE(torch::allclose(
      pm.points_b.select(1, 1) / 5, pm.points_a.select(1, 1) / 10, 0, 1e-4));
  // Certainty threshold is strict (>).
  EXPECT_EQ(DenseWarpToPixelMatches(warp, cert, {40, 80}, {20, 160}, 0.8)
                .points_a.size(0),
            24);
}

TEST(WarpMatches, SampleWarpToPixelMatches) {
  torch::Tensor warp, cert;
  MakeShiftWarp(16, 32, &warp, &cert);
  SampleOptions opts;
  opts.seed = 3;
  opts.sample_mode = "threshold";
  const PixelMatches pm =
      SampleWarpToPixelMatches(warp, cert, {160, 320}, {160, 320}, 100, opts);
  ASSERT_EQ(pm.points_a.size(0), 100);
  EXPECT_TRUE(torch::all(pm.certainty == 1).item<bool>());
  // A->B samples move +20 px in x, B->A samples -20 px (A minus B = -20).
  const torch::Tensor dx =
      (pm.points_b.select(1, 0) - pm.points_a.select(1, 0)).abs();
  EXPECT_TRUE(torch::allclose(dx, torch::full_like(dx, 20.0), 0, 1e-3));
}

}  // namespace
}  // namespace l2m
