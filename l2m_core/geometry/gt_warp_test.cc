#include "l2m_core/geometry/gt_warp.h"

#include "l2m_core/geometry/projection.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace l2m {
namespace {

torch::Tensor Calibration(double fx, double fy, double cx, double cy) {
  return torch::tensor({fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0},
                       torch::kFloat64)
      .view({1, 3, 3});
}

// Rz(c) · Ry(b) · Rx(a), radians.
torch::Tensor Rotation(double a, double b, double c) {
  const auto o = torch::kFloat64;
  const torch::Tensor rx = torch::tensor({1.0,
                                          0.0,
                                          0.0,
                                          0.0,
                                          std::cos(a),
                                          -std::sin(a),
                                          0.0,
                                          std::sin(a),
                                          std::cos(a)},
                                         o);
  const torch::Tensor ry = torch::tensor({std::cos(b),
                                          0.0,
                                          std::sin(b),
                                          0.0,
                                          1.0,
                                          0.0,
                                          -std::sin(b),
                                          0.0,
                                          std::cos(b)},
                                         o);
  const torch::Tensor rz = torch::tensor({std::cos(c),
                                          -std::sin(c),
                                          0.0,
                                          std::sin(c),
                                          std::cos(c),
                                          0.0,
                                          0.0,
                                          0.0,
                                          1.0},
                                         o);
  return torch::matmul(rz.view({3, 3}),
                       torch::matmul(ry.view({3, 3}), rx.view({3, 3})));
}

torch::Tensor Pose(const torch::Tensor& rotation, const torch::Tensor& t) {
  torch::Tensor pose = torch::eye(4, torch::kFloat64);
  pose.slice(0, 0, 3).slice(1, 0, 3).copy_(rotation);
  pose.slice(0, 0, 3).select(1, 3).copy_(t);
  return pose.unsqueeze(0);
}

// Exact z-depth (1, h, w) of the plane n · X = d seen by camera K, sampled at
// the pixel centres (COLMAP pixels: (j + 0.5, i + 0.5)).
torch::Tensor PlaneDepth(const torch::Tensor& k,
                         const torch::Tensor& n,
                         double d,
                         int64_t h,
                         int64_t w) {
  const torch::Tensor grid = NormalizedGrid(h, w).to(torch::kFloat64);
  const torch::Tensor pixels = NormalizedToPixels(grid.unsqueeze(0), h, w);
  const torch::Tensor rays =
      UnprojectPixels(pixels, torch::ones({1, h * w}, torch::kFloat64), k);
  const torch::Tensor n_dot_ray = torch::matmul(n.view({1, 1, 3}), rays);
  return (d / n_dot_ray).view({1, h, w}).to(torch::kFloat32);
}

struct PlanarPair {
  torch::Tensor k1, k2, pose, depth1, depth2, homography;
};

// A tilted plane seen by two cameras with different intrinsics; the
// homography maps A's pixels to B's: K2 (R + t nᵀ / d) K1⁻¹.
PlanarPair MakePlanarPair(int64_t h, int64_t w) {
  PlanarPair p;
  p.k1 = Calibration(60, 60, w / 2.0, h / 2.0);
  p.k2 = Calibration(66, 64, w / 2.0 - 1.3, h / 2.0 + 0.8);
  const torch::Tensor r = Rotation(0.03, -0.08, 0.02);
  const torch::Tensor t = torch::tensor({0.4, -0.1, 0.15}, torch::kFloat64);
  p.pose = Pose(r, t);
  torch::Tensor n = torch::tensor({0.1, -0.2, 1.0}, torch::kFloat64);
  n = n / n.norm();
  const double d = 4.0;
  p.depth1 = PlaneDepth(p.k1, n, d, h, w);
  // In camera 2: (R n) · X2 = d + (R n) · t.
  const torch::Tensor n2 = torch::matmul(r, n);
  p.depth2 = PlaneDepth(p.k2, n2, d + n2.dot(t).item<double>(), h, w);
  p.homography = torch::matmul(
      p.k2[0], torch::matmul(r + torch::outer(t, n) / d, p.k1[0].inverse()));
  return p;
}

// Pixels (L, 2) -> H · [x, y, 1] dehomogenised.
torch::Tensor ApplyHomography(const torch::Tensor& homography,
                              const torch::Tensor& pixels) {
  const torch::Tensor x = torch::cat(
      {pixels, torch::ones({pixels.size(0), 1}, torch::kFloat64)}, 1);
  const torch::Tensor y = torch::matmul(x, homography.t());
  return y.narrow(1, 0, 2) / y.narrow(1, 2, 1);
}

TEST(GtWarpTest, IdentityPoseGivesIdentityWarp) {
  const int64_t h = 12, w = 16;
  const torch::Tensor k = Calibration(20, 20, 8, 6);
  const torch::Tensor depth = torch::rand({1, h, w}) * 3 + 1;
  const torch::Tensor pose = torch::eye(4, torch::kFloat64).unsqueeze(0);
  GtWarpOptions options;
  options.projection_z_offset = 0;  // exact pinhole
  const DenseGtWarp gt = GetGtWarp(depth, depth, pose, k, k, h, w, options);
  const torch::Tensor grid =
      NormalizedGrid(h, w).to(torch::kFloat64).view({1, h, w, 2});
  EXPECT_LT((gt.warp - grid).abs().max().item<double>(), 1e-12);
  EXPECT_LT(gt.relative_depth_error.max().item<double>(), 1e-12);
  // RoMa's covisibility band is 0 < u < W − 1: the last column and row of
  // pixel centres (at W − 0.5, H − 0.5) are rejected, the first ones kept.
  torch::Tensor expected = torch::ones({1, h, w});
  expected.select(2, w - 1).zero_();
  expected.select(1, h - 1).zero_();
  EXPECT_TRUE(torch::equal(gt.prob, expected));
}

TEST(GtWarpTest, ZOffsetOfTheReference) {
  // With RoMa's +1e-4 the identity warp moves by u · 1e-4 / z pixels.
  const int64_t h = 6, w = 8;
  const torch::Tensor k = Calibration(10, 10, 4, 3);
  const torch::Tensor depth = torch::full({1, h, w}, 2.0);
  const torch::Tensor pose = torch::eye(4, torch::kFloat64).unsqueeze(0);
  const DenseGtWarp gt = GetGtWarp(depth, depth, pose, k, k, h, w);
  const torch::Tensor pixels = NormalizedToPixels(gt.warp, h, w);
  const torch::Tensor expected =
      NormalizedToPixels(NormalizedGrid(h, w).to(torch::kFloat64), h, w)
          .view({1, h, w, 2}) *
      (2.0 / (2.0 + 1e-4));
  EXPECT_LT((pixels - expected).abs().max().item<double>(), 1e-9);
}

TEST(GtWarpTest, PlanarSceneEqualsHomography) {
  const int64_t h = 48, w = 64;
  const PlanarPair p = MakePlanarPair(h, w);
  // Full resolution and coarser grids (any scale), with and without the
  // reference's z offset.
  for (const int64_t step : {1, 2, 4}) {
    for (const double z_offset : {0.0, 1e-4}) {
      GtWarpOptions options;
      options.projection_z_offset = z_offset;
      const int64_t gh = h / step, gw = w / step;
      const DenseGtWarp gt =
          GetGtWarp(p.depth1, p.depth2, p.pose, p.k1, p.k2, gh, gw, options);
      const torch::Tensor grid = NormalizedGrid(gh, gw).to(torch::kFloat64);
      const torch::Tensor expected =
          ApplyHomography(p.homography, NormalizedToPixels(grid, h, w));
      const torch::Tensor got =
          NormalizedToPixels(gt.warp.view({gh * gw, 2}), h, w);
      const torch::Tensor valid = gt.prob.view({gh * gw}) > 0;
      // Cells that land inside B's band must be valid (a plane is
      // consistent), except within half a pixel of the left/top border,
      // where the bilinear depth of B mixes in the zero padding.
      const torch::Tensor inside =
          (expected.select(1, 0) > 0.51) & (expected.select(1, 0) < w - 1.01) &
          (expected.select(1, 1) > 0.51) & (expected.select(1, 1) < h - 1.01);
      EXPECT_TRUE(torch::equal(valid & inside, inside))
          << "step " << step << ": inside cells marked invalid";
      EXPECT_GT(inside.sum().item<int64_t>(), gh * gw / 2);
      const double err =
          (got - expected).norm(2, 1).masked_select(valid).max().item<double>();
      // Without the offset only float32 depth storage and, on coarser grids,
      // bilinear depth between pixel centres (z is not affine in pixels)
      // remain; the 1e-4 offset adds ≈ u·1e-4/z ≤ 0.002 px here.
      EXPECT_LT(err, z_offset > 0 ? 0.05 : 1e-3)
          << "step " << step << " z_offset " << z_offset;
    }
  }
}

TEST(GtWarpTest, ForwardBackwardConsistent) {
  const int64_t h = 48, w = 64;
  const PlanarPair p = MakePlanarPair(h, w);
  const DenseGtWarp forward =
      GetGtWarp(p.depth1, p.depth2, p.pose, p.k1, p.k2, h, w);
  // Start points inside A's band (0, W − 1) x (0, H − 1), so that the way
  // back can be valid too, and landing half a pixel away from B's left/top
  // border: nearer, B's bilinear depth mixes in the zero padding (by < 5 %,
  // so RoMa keeps them) and the way back is off by up to ~0.3 px.
  const torch::Tensor grid = NormalizedGrid(h, w).to(torch::kFloat64);
  const torch::Tensor start_px = NormalizedToPixels(grid, h, w);
  const torch::Tensor end_px =
      NormalizedToPixels(forward.warp.view({-1, 2}), h, w);
  const torch::Tensor valid =
      (forward.prob.view({-1}) > 0) & (start_px.select(1, 0) < w - 1) &
      (start_px.select(1, 1) < h - 1) & (end_px.select(1, 0) > 0.5) &
      (end_px.select(1, 1) > 0.5);
  const torch::Tensor there =
      forward.warp.view({-1, 2}).index({valid}).unsqueeze(0);
  const WarpedKeypoints back = WarpKeypoints(
      there, p.depth2, p.depth1, p.pose[0].inverse().unsqueeze(0), p.k2, p.k1);
  EXPECT_TRUE(back.valid.all().item<bool>());
  const torch::Tensor start = grid.index({valid});
  // Bilinear depth between B's pixel centres is not exact for a plane (1/z
  // is affine, z is not), and RoMa's z offset; both are far below 0.05 px.
  const double err =
      (NormalizedToPixels(back.warp[0], h, w) - NormalizedToPixels(start, h, w))
          .norm(2, 1)
          .max()
          .item<double>();
  EXPECT_LT(err, 0.01);
}

TEST(GtWarpTest, SkyOcclusionAndBorderAreInvalid) {
  const int64_t h = 12, w = 16;
  const torch::Tensor k = Calibration(20, 20, 8, 6);
  const torch::Tensor pose = torch::eye(4, torch::kFloat64).unsqueeze(0);
  torch::Tensor depth1 = torch::full({1, h, w}, 5.0);
  torch::Tensor depth2 = torch::full({1, h, w}, 5.0);
  depth1.slice(1, 0, 3).zero_();                    // sky in A: unsupervised
  depth2.slice(1, 6, 9).slice(2, 4, 8).fill_(2.0);  // occluder in B only
  const DenseGtWarp gt = GetGtWarp(depth1, depth2, pose, k, k, h, w);
  EXPECT_EQ(gt.prob.slice(1, 0, 3).sum().item<double>(), 0);
  // Fully inside the occluder (bilinear taps all on it): rejected.
  EXPECT_EQ(gt.prob.slice(1, 7, 8).slice(2, 5, 7).sum().item<double>(), 0);
  EXPECT_EQ(gt.prob[0][5][2].item<double>(), 1);
  // A keypoint on the image border samples zero padding: depth ≠ 0 but the
  // projection is on the border, outside the strict band.
  const WarpedKeypoints border =
      WarpKeypoints(torch::tensor({-1.0, 0.1}, torch::kFloat64).view({1, 1, 2}),
                    depth2,
                    depth2,
                    pose,
                    k,
                    k);
  EXPECT_FALSE(border.valid.item<bool>());
}

TEST(GtWarpTest, PointsBehindCameraAreInvalid) {
  // Camera 2 turned around (180° about y): everything is behind it.
  const int64_t h = 6, w = 8;
  const torch::Tensor k = Calibration(10, 10, 4, 3);
  const torch::Tensor depth = torch::full({1, h, w}, 3.0);
  const torch::Tensor pose =
      Pose(Rotation(0, M_PI, 0), torch::zeros({3}, torch::kFloat64));
  const DenseGtWarp gt = GetGtWarp(depth, depth, pose, k, k, h, w);
  EXPECT_EQ(gt.prob.sum().item<double>(), 0);
}

TEST(GtWarpTest, BadInputThrows) {
  const torch::Tensor k = Calibration(10, 10, 4, 3);
  const torch::Tensor depth = torch::ones({1, 6, 8});
  const torch::Tensor pose = torch::eye(4, torch::kFloat64).unsqueeze(0);
  EXPECT_THROW(GetGtWarp(depth[0], depth, pose, k, k, 6, 8),
               std::invalid_argument);
  EXPECT_THROW(GetGtWarp(depth, depth, pose[0], k, k, 6, 8),
               std::invalid_argument);
  EXPECT_THROW(GetGtWarp(depth, depth, pose, k, k, 0, 8),
               std::invalid_argument);
  EXPECT_THROW(GetGtWarp(depth, torch::ones({2, 6, 8}), pose, k, k, 6, 8),
               std::invalid_argument);
  GtWarpOptions options;
  options.relative_depth_error_threshold = 0;
  EXPECT_THROW(options.Check(), std::invalid_argument);
}

}  // namespace
}  // namespace l2m
