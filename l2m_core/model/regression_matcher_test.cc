// RegressionMatcher's symmetric batch: in training the support pyramid is
// projected on its own, as in the reference; in inference the projected
// query is swapped instead (same values, one projection).

#include "l2m_core/model/regression_matcher.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace l2m {
namespace {

// Each projection's BatchNorm sees two batches a training step (query, then
// support), as the reference's two proj calls: its running statistics move
// twice. Projecting once and swapping halves would count one.
TEST(RegressionMatcher, TrainingProjectsTheSupportOnItsOwn) {
  torch::manual_seed(0);
  const MatcherConfig config = MatcherConfig::Preset("l2m_tiny");
  RegressionMatcher model(config);
  model->train();
  const torch::Tensor a = torch::rand({1, 3, config.coarse_h, config.coarse_w});
  const torch::Tensor b = torch::rand({1, 3, config.coarse_h, config.coarse_w});
  model->Forward(a, b, /*upsample=*/false, nullptr, config.ScaleFactorCoarse());
  int checked = 0;
  for (const auto& item : model->named_buffers()) {
    const std::string& name = item.key();
    if (name.find("decoder.proj.") == std::string::npos ||
        name.find("num_batches_tracked") == std::string::npos) {
      continue;
    }
    EXPECT_EQ(item.value().item<int64_t>(), 2) << name;
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no projection BatchNorm found";
}

// In inference the swapped projection gives what projecting the swapped
// support gives: the halves of the symmetric output are each other's
// mirror, as with the training path's explicit support.
TEST(RegressionMatcher, InferenceSwapMatchesExplicitSupport) {
  torch::manual_seed(0);
  const MatcherConfig config = MatcherConfig::Preset("l2m_tiny");
  RegressionMatcher model(config);
  const torch::Tensor a = torch::rand({1, 3, config.coarse_h, config.coarse_w});
  const torch::Tensor b = torch::rand({1, 3, config.coarse_h, config.coarse_w});
  torch::NoGradGuard no_grad;
  model->eval();
  const Correspondences swapped = model->Forward(
      a, b, /*upsample=*/false, nullptr, config.ScaleFactorCoarse());
  // The explicit route (training's) in eval mode: BatchNorm uses its running
  // statistics either way, so only the projection route differs.
  model->train();
  for (auto& module : model->modules(/*include_self=*/false)) {
    if (auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) bn->eval();
  }
  const Correspondences explicit_support = model->Forward(
      a, b, /*upsample=*/false, nullptr, config.ScaleFactorCoarse());
  const torch::Tensor got = swapped.at(1).flow;
  const torch::Tensor ref = explicit_support.at(1).flow;
  EXPECT_LT((got - ref).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace l2m
