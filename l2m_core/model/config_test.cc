#include "l2m_core/model/config.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

namespace l2m {
namespace {

TEST(MatcherConfig, PresetsAreConsistent) {
  for (const char* name : {"l2m", "l2m_560", "roma_outdoor", "roma_indoor"}) {
    const MatcherConfig c = MatcherConfig::Preset(name);
    EXPECT_NO_THROW(c.Check()) << name;
    EXPECT_EQ(c.name, name);
    EXPECT_EQ(c.dino.embed_dim, 1024);
    EXPECT_EQ(c.refiner.at(16).in_dim, 1377);
    EXPECT_EQ(c.refiner.at(8).in_dim, 1137);
    EXPECT_EQ(c.refiner.at(4).in_dim, 569);
    EXPECT_EQ(c.refiner.at(2).in_dim, 144);
    EXPECT_EQ(c.refiner.at(1).in_dim, 24);
  }
  EXPECT_FALSE(MatcherConfig::L2m().normalize);
  EXPECT_EQ(MatcherConfig::L2m().coarse_h, 672);
  EXPECT_EQ(MatcherConfig::L2m().upsample_w, 1344);
  EXPECT_EQ(MatcherConfig::L2m560().coarse_w, 560);
  EXPECT_EQ(MatcherConfig::L2m560().upsample_h, 864);
  EXPECT_TRUE(MatcherConfig::RomaOutdoor().normalize);
  EXPECT_TRUE(MatcherConfig::RomaIndoor().normalize);
  EXPECT_THROW(MatcherConfig::Preset("nope"), std::invalid_argument);
}

TEST(MatcherConfig, CheckRejectsInconsistentSizes) {
  MatcherConfig c = MatcherConfig::L2m();
  c.coarse_h = 670;  // not a multiple of 14
  EXPECT_THROW(c.Check(), std::invalid_argument);
  c = MatcherConfig::L2m();
  c.refiner.at(16).in_dim = 1376;
  EXPECT_THROW(c.Check(), std::invalid_argument);
  c = MatcherConfig::L2m();
  c.proj.at(8).in_dim = 256;  // VGG scale 8 is 512 wide
  EXPECT_THROW(c.Check(), std::invalid_argument);
  c = MatcherConfig::L2m();
  c.transformer.dim = 512;
  EXPECT_THROW(c.Check(), std::invalid_argument);
}

TEST(MatcherConfig, ScaleFactorRules) {
  MatcherConfig c = MatcherConfig::L2m560();
  EXPECT_DOUBLE_EQ(c.ScaleFactorCoarse(), 1.0);
  EXPECT_NEAR(c.ScaleFactorUpsample(), 864.0 / 560.0, 1e-12);
  c.scale_factor_rule = ScaleFactorRule::kRomaHead;
  EXPECT_NEAR(c.ScaleFactorCoarse(), 1.0, 1e-12);
  EXPECT_NEAR(c.ScaleFactorUpsample(), 864.0 / 560.0, 1e-12);
  c = MatcherConfig::L2m();
  c.scale_factor_rule = ScaleFactorRule::kRomaHead;
  EXPECT_NEAR(c.ScaleFactorCoarse(), 672.0 / 560.0, 1e-12);
}

TEST(MatcherConfig, LoadsFixtureConfig) {
  L2M_REQUIRE_SHARED(shared);
  const MatcherConfig c =
      LoadFixtureConfig(shared + "/fixtures/roma_parity/config.json");
  EXPECT_EQ(c.dino.embed_dim, 128);
  EXPECT_EQ(c.dino.depth, 2);
  EXPECT_EQ(c.vgg.cfg.size(), 16u);
  EXPECT_EQ(c.vgg.cfg[2], VggConfig::kVggMaxPool);
  EXPECT_EQ(c.proj.at(1).out_dim, 9);
  EXPECT_EQ(c.gp.gp_dim, 64);
  EXPECT_EQ(c.transformer.num_blocks, 2);
  EXPECT_EQ(c.refiner.at(16).local_corr_radius, 7);
  EXPECT_EQ(c.refiner.at(2).local_corr_radius, 0);
  EXPECT_EQ(c.refiner.at(1).hidden_blocks, 2);
  EXPECT_EQ(c.coarse_h, 56);
  EXPECT_EQ(c.coarse_w, 112);
  EXPECT_EQ(c.upsample_w, 160);
  EXPECT_NEAR(c.ScaleFactorUpsample(), 1.4285714, 1e-7);
}

}  // namespace
}  // namespace l2m
