// Full-size graphs (construction only) vs the reference state-dict key lists
// (MANIFEST.md §4): same keys, dtypes and shapes, nothing extra or missing.

#include "l2m_core/model/dinov2.h"
#include "l2m_core/model/regression_matcher.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

namespace l2m {
namespace {

std::string DtypeName(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return "float32";
    case torch::kInt64:
      return "int64";
    default:
      return c10::toString(t);
  }
}

// Compares name → (dtype, shape) of module's parameters and buffers with the
// key list.
void ExpectKeys(torch::nn::Module& module,
                const std::string& key_file,
                int64_t expected_count) {
  const std::vector<test::KeySpec> keys = test::ReadKeyList(key_file);
  ASSERT_EQ(static_cast<int64_t>(keys.size()), expected_count) << key_file;
  std::map<std::string, torch::Tensor> ours;
  for (const auto& item : module.named_parameters(true))
    ours[item.key()] = item.value();
  for (const auto& item : module.named_buffers(true))
    ours[item.key()] = item.value();
  int64_t elements = 0;
  for (const test::KeySpec& k : keys) {
    auto it = ours.find(k.name);
    if (it == ours.end()) {
      ADD_FAILURE() << "missing " << k.name;
      continue;
    }
    EXPECT_EQ(DtypeName(it->second.scalar_type()), k.dtype) << k.name;
    EXPECT_EQ(it->second.sizes().vec(), k.shape) << k.name;
    elements += it->second.numel();
    ours.erase(it);
  }
  for (const auto& [name, t] : ours) ADD_FAILURE() << "unexpected " << name;
  std::printf("%s: %zu tensors, %lld elements match\n",
              key_file.c_str(),
              keys.size(),
              static_cast<long long>(elements));
}

TEST(ModelKeys, FullSizeMatcherAndVitL14) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity";
  RegressionMatcher matcher(MatcherConfig::L2m560());
  ExpectKeys(*matcher, dir + "/keys_matcher_full.txt", 603);
  // The matcher's own ViT (outside its state dict, as in the reference) is a
  // ViT-L/14.
  ExpectKeys(*matcher->dino(), dir + "/keys_dinov2_vitl14.txt", 343);
}

TEST(ModelKeys, VitB14) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity";
  DinoVisionTransformer vit(DinoConfig::VitB14());
  ExpectKeys(*vit, dir + "/keys_dinov2_vitb14.txt", 175);
}

// A quick forward of a tiny random graph: output shapes and ranges, on the CPU.
TEST(ModelShapes, TinyRandomGraph) {
  L2M_REQUIRE_SHARED(shared);
  MatcherConfig config =
      LoadFixtureConfig(shared + "/fixtures/roma_parity/config.json");
  config.coarse_h = 28;
  config.coarse_w = 56;
  config.upsample_h = 40;
  config.upsample_w = 72;
  RegressionMatcher matcher(config);
  matcher->eval();
  torch::manual_seed(0);
  auto a = torch::rand({1, 3, 28, 56}), b = torch::rand({1, 3, 28, 56});
  auto a_up = torch::rand({1, 3, 40, 72}), b_up = torch::rand({1, 3, 40, 72});
  const MatchResult r = matcher->Match(a, b, a_up, b_up);
  EXPECT_EQ(r.warp.sizes().vec(), (std::vector<int64_t>{40, 144, 4}));
  EXPECT_EQ(r.certainty.sizes().vec(), (std::vector<int64_t>{40, 144}));
  EXPECT_LE(r.warp.abs().max().item<float>(), 1.0f);
  EXPECT_GE(r.certainty.min().item<float>(), 0.0f);
  EXPECT_LE(r.certainty.max().item<float>(), 1.0f);
  // Left half columns 0:2 are A's own pixel centres.
  EXPECT_NEAR(r.warp[0][0][0].item<float>(), -1 + 1.0 / 72, 1e-6);
  EXPECT_NEAR(r.warp[0][0][1].item<float>(), -1 + 1.0 / 40, 1e-6);
}

}  // namespace
}  // namespace l2m
