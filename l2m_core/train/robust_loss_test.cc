#include "l2m_core/train/robust_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace l2m {
namespace {

// A fronto-parallel wall seen by two cameras 0.2 apart sideways: every cell
// has a GT warp, most are valid.
DepthPairBatch WallBatch(int64_t batch, int64_t h, int64_t w) {
  DepthPairBatch b;
  b.depth_a = torch::full({batch, h, w}, 5.0);
  b.depth_b = b.depth_a.clone();
  b.calibration_a =
      torch::tensor({40.0, 0.0, w / 2.0, 0.0, 40.0, h / 2.0, 0.0, 0.0, 1.0})
          .view({1, 3, 3})
          .repeat({batch, 1, 1});
  b.calibration_b = b.calibration_a.clone();
  b.cam2_from_cam1 = torch::eye(4).repeat({batch, 1, 1});
  b.cam2_from_cam1.select(2, 3).select(1, 0).fill_(0.2);
  return b;
}

// The GT warp at (h, w) as a (B, 2, h, w) flow: what a perfect decoder says.
torch::Tensor PerfectFlow(const DepthPairBatch& b, int64_t h, int64_t w) {
  const DenseGtWarp gt = GetGtWarp(b.depth_a,
                                   b.depth_b,
                                   b.cam2_from_cam1,
                                   b.calibration_a,
                                   b.calibration_b,
                                   h,
                                   w);
  return gt.warp.to(torch::kFloat32).permute({0, 3, 1, 2}).contiguous();
}

std::vector<ScaleCorrespondences> PerfectCorresps(const DepthPairBatch& b,
                                                  int64_t anchors) {
  std::vector<ScaleCorrespondences> corresps;
  int64_t h = 4, w = 6;
  for (const int s : {16, 8, 4, 2, 1}) {
    ScaleCorrespondences c;
    c.scale = s;
    c.flow = PerfectFlow(b, h, w).set_requires_grad(true);
    c.certainty =
        torch::zeros({b.depth_a.size(0), 1, h, w}, torch::requires_grad());
    if (s == 16) {
      c.gm_cls = torch::zeros({b.depth_a.size(0), anchors * anchors, h, w},
                              torch::requires_grad());
      c.gm_certainty = torch::zeros({b.depth_a.size(0), 1, h, w});
    }
    corresps.push_back(c);
    h *= 2;
    w *= 2;
  }
  return corresps;
}

TEST(RobustLossTest, AnchorsAreRowMajorXFirst) {
  const torch::Tensor anchors = ClassificationAnchors(4, torch::kCPU);
  ASSERT_EQ(anchors.sizes(), (std::vector<int64_t>{16, 2}));
  // lin = (−0.75, −0.25, 0.25, 0.75); anchor 6 = (lin[2], lin[1]).
  EXPECT_FLOAT_EQ(anchors[6][0].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(anchors[6][1].item<float>(), -0.25f);
  EXPECT_FLOAT_EQ(anchors[15][0].item<float>(), 0.75f);
}

TEST(RobustLossTest, PerfectPredictionCostsOnlyTheFloor) {
  const DepthPairBatch b = WallBatch(2, 32, 48);
  std::vector<ScaleCorrespondences> corresps = PerfectCorresps(b, 8);
  const RobustLossResult r = ComputeRobustLoss(corresps, b);
  r.total.backward();
  // Barron at zero error: cs^α = (1e-4 · s)^0.5.
  for (const int s : {16, 8, 4, 2, 1}) {
    const std::string k = "delta_regression_loss_" + std::to_string(s);
    EXPECT_NEAR(r.Term(k).item<double>(), std::sqrt(1e-4 * s), 1e-7) << k;
    // Zero-logit certainty: BCE = log 2 whatever the target.
    EXPECT_NEAR(
        r.Term("delta_certainty_loss_" + std::to_string(s)).item<double>(),
        std::log(2.0),
        1e-6);
  }
  // Uniform anchor logits: CE = log(64).
  EXPECT_NEAR(r.Term("gm_cls_loss_16").item<double>(), std::log(64.0), 1e-5);
  EXPECT_EQ(r.Term("train_pck_05").item<double>(), 1.0);
  // Locality kept every GT-valid cell (the previous EPE is 0).
  for (const RobustLossScale& scale : r.scales) {
    EXPECT_TRUE(torch::equal(scale.prob, scale.gt_prob)) << scale.scale;
    EXPECT_GT(scale.prob.sum().item<double>(), 0.5 * scale.prob.numel());
  }
  // At zero EPE the regression gradient vanishes.
  for (const ScaleCorrespondences& c : corresps) {
    EXPECT_EQ(c.flow.grad().abs().max().item<double>(), 0) << c.scale;
  }
  // The total is the ordered sum of the contributions.
  double sum = 0;
  for (const auto& contribution : r.contributions) {
    sum += contribution.second.item<double>();
  }
  EXPECT_NEAR(r.total.item<double>(), sum, 1e-5);
}

TEST(RobustLossTest, GmClsRewardsTheNearestAnchor) {
  const DepthPairBatch b = WallBatch(1, 32, 48);
  std::vector<ScaleCorrespondences> corresps = PerfectCorresps(b, 8);
  const RobustLossResult first = ComputeRobustLoss(corresps, b);
  // A large logit on each cell's GT anchor drives the CE to ~0.
  const torch::Tensor gt_cls = first.scales[0].gt_cls;  // (1, 4, 6)
  torch::Tensor logits = torch::zeros_like(corresps[0].gm_cls.detach());
  logits.scatter_(1, gt_cls.unsqueeze(1), 30.0);
  corresps[0].gm_cls = logits;
  const RobustLossResult second = ComputeRobustLoss(corresps, b);
  EXPECT_LT(second.Term("gm_cls_loss_16").item<double>(), 1e-9);
  // The GT anchor is the nearest one to the GT warp.
  const torch::Tensor anchors = ClassificationAnchors(8, torch::kCPU);
  const torch::Tensor x2 = first.scales[0].x2.view({-1, 2});
  const torch::Tensor nearest =
      torch::cdist(x2, anchors).argmin(1).view_as(gt_cls);
  EXPECT_TRUE(torch::equal(nearest, gt_cls));
}

TEST(RobustLossTest, LocalityMasksFarCells) {
  const DepthPairBatch b = WallBatch(1, 32, 48);
  std::vector<ScaleCorrespondences> corresps = PerfectCorresps(b, 8);
  // Scale 16 is off by 0.5 (> the scale-8 threshold 0.25) in its left half.
  torch::Tensor flow16 = corresps[0].flow.detach().clone();
  flow16.narrow(3, 0, 3).add_(0.5);
  corresps[0].flow = flow16;
  const RobustLossResult r = ComputeRobustLoss(corresps, b);
  const RobustLossScale& s8 = r.scales[1];  // 8 x 12, nearest-exact from 4 x 6
  EXPECT_EQ(s8.prob.narrow(2, 0, 6).sum().item<double>(), 0);
  EXPECT_TRUE(
      torch::equal(s8.prob.narrow(2, 6, 6), s8.gt_prob.narrow(2, 6, 6)));
}

TEST(RobustLossTest, BadInputThrows) {
  const DepthPairBatch b = WallBatch(1, 32, 48);
  std::vector<ScaleCorrespondences> corresps = PerfectCorresps(b, 8);
  // The locality mask of scale 8 needs a coarser scale before it.
  EXPECT_THROW(ComputeRobustLoss({corresps[1]}, b), std::invalid_argument);
  std::vector<ScaleCorrespondences> bad = corresps;
  bad[0].gm_cls = torch::zeros({1, 63, 4, 6});
  EXPECT_THROW(ComputeRobustLoss(bad, b), std::invalid_argument);
  bad = corresps;
  bad[2].certainty = torch::zeros({1, 1, 3, 3});
  EXPECT_THROW(ComputeRobustLoss(bad, b), std::invalid_argument);
  RobustLossOptions options;
  options.c = 0;
  EXPECT_THROW(options.Check(), std::invalid_argument);
}

}  // namespace
}  // namespace l2m
