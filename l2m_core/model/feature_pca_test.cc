#include "l2m_core/model/feature_pca.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace l2m {
namespace {

TEST(FeaturePca, RecoversTheDominantDirectionsWithFixedSigns) {
  torch::manual_seed(1);
  // 500 points in 16-D: large variance along e3, medium along e7, tiny noise.
  const auto n = 500;
  at::Tensor rows = 0.01 * torch::randn({n, 16}, torch::kFloat64);
  rows.select(1, 3) += 5.0 * torch::randn({n}, torch::kFloat64);
  rows.select(1, 7) += 2.0 * torch::randn({n}, torch::kFloat64);
  rows += 3.0;  // PCA must centre.
  const PcaBasis basis = FitPca(rows, 3);
  ASSERT_EQ(basis.components.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_NEAR(basis.components[0][3].item<double>(), 1.0, 1e-3);
  EXPECT_NEAR(basis.components[1][7].item<double>(), 1.0, 1e-3);
  // Orthonormal rows.
  EXPECT_TRUE(
      torch::allclose(torch::matmul(basis.components, basis.components.t()),
                      torch::eye(3, torch::kFloat64),
                      1e-9,
                      1e-9));
  // Flipping the data's sign flips the projections, not the basis signs.
  const PcaBasis flipped = FitPca(-rows, 3);
  EXPECT_TRUE(
      torch::allclose(flipped.components, basis.components, 1e-6, 1e-6));
}

TEST(FeaturePca, ColoursAreZScoredAndClipped) {
  torch::manual_seed(2);
  const at::Tensor map = torch::randn({32, 10, 12});
  const at::Tensor rows = FeatureMapToRows(map);
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{120, 32}));
  EXPECT_TRUE(torch::equal(rows[13], map.select(2, 1).select(1, 1)));
  const at::Tensor colours = PcaColours(rows, FitPca(rows, 3));
  ASSERT_EQ(colours.sizes(), (std::vector<int64_t>{120, 3}));
  EXPECT_GE(colours.min().item<float>(), 0.0f);
  EXPECT_LE(colours.max().item<float>(), 1.0f);
  // Mostly within +-1 sigma, so the mean stays close to 0.5.
  const at::Tensor mean = colours.mean(0);
  EXPECT_TRUE(torch::allclose(mean, torch::full({3}, 0.5), 0.0, 0.05)) << mean;
  EXPECT_THROW(PcaColours(torch::randn({5, 8}), FitPca(rows, 3)),
               std::invalid_argument);
  EXPECT_THROW(FitPca(torch::randn({2, 8}), 3), std::invalid_argument);
}

}  // namespace
}  // namespace l2m
