// The L2M adapter end to end on the reference fixture: JPEG decode, PIL
// bicubic resize, the small fixture graph with its weights read from the
// .pth checkpoints, sampling and the conversion to COLMAP pixels. Every
// sampled match must lie on the reference's final warp.

#include "matcher_adapters/l2m_matcher.h"

#include "matcher_adapters/image_io.h"
#include "matcher_adapters/matcher_factory.h"
#include "matcher_adapters/test_images.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace l2m {
namespace {

L2mMatcherOptions FixtureOptions(const std::string& dir) {
  L2mMatcherOptions options;
  options.preset = dir + "/config.json";
  options.weights = dir + "/weights_matcher.pth";
  options.dino_weights = dir + "/weights_dino.pth";
  options.num_samples = 2000;
  options.num_threads = 2;
  options.seed = 3;
  return options;
}

TEST(L2mMatcher, SampledMatchesLieOnTheReferenceWarp) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity";
  MatcherOptions factory_options;
  factory_options.type = "l2m";
  factory_options.l2m = FixtureOptions(dir);
  auto matcher = CreateMatcher(factory_options);
  ASSERT_TRUE(matcher->IsDense());
  const MatcherImage a = LoadMatcherImage(1, dir + "/sacre_coeur_A.jpg");
  const MatcherImage b = LoadMatcherImage(2, dir + "/sacre_coeur_B.jpg");
  const PairMatches m = matcher->MatchDense(a, b);
  ASSERT_GT(m.size(), 200u);

  // Reference output at the upsample resolution: (80, 320, 4), left half
  // A->B on A's grid, right half B->A on B's grid.
  const test::TensorFixture run = test::TensorFixture::Load(dir + "/run_main");
  const at::Tensor warp = run.Get("final.warp");
  const int64_t h = warp.size(0), w = warp.size(1) / 2;
  const double wa = a.bgr.cols, ha = a.bgr.rows, wb = b.bgr.cols,
               hb = b.bgr.rows;
  auto acc = warp.accessor<float, 3>();
  double max_err = 0;
  size_t on_grid = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    const double xa = m.xy1[2 * i], ya = m.xy1[2 * i + 1], xb = m.xy2[2 * i],
                 yb = m.xy2[2 * i + 1];
    ASSERT_TRUE(xa >= 0 && xa <= wa && ya >= 0 && ya <= ha) << xa << " " << ya;
    ASSERT_TRUE(xb >= 0 && xb <= wb && yb >= 0 && yb <= hb) << xb << " " << yb;
    EXPECT_GE(m.scores[i], 0.05f);
    // A-grid cell centres are at ((c + 0.5) * wa / w, ...): which half?
    const double ca = xa / wa * w - 0.5, ra = ya / ha * h - 0.5;
    const double cb = xb / wb * w - 0.5, rb = yb / hb * h - 0.5;
    const bool a_on_grid = std::abs(ca - std::round(ca)) < 1e-3 &&
                           std::abs(ra - std::round(ra)) < 1e-3;
    const bool b_on_grid = std::abs(cb - std::round(cb)) < 1e-3 &&
                           std::abs(rb - std::round(rb)) < 1e-3;
    ASSERT_TRUE(a_on_grid || b_on_grid)
        << "match " << i << " lies on neither image's grid";
    ++on_grid;
    double ex, ey;
    if (a_on_grid) {
      const int r = static_cast<int>(std::lround(ra)),
                c = static_cast<int>(std::lround(ca));
      ex = (acc[r][c][2] + 1) * wb / 2 - xb;
      ey = (acc[r][c][3] + 1) * hb / 2 - yb;
    } else {
      const int r = static_cast<int>(std::lround(rb)),
                c = static_cast<int>(std::lround(cb));
      ex = (acc[r][w + c][0] + 1) * wa / 2 - xa;
      ey = (acc[r][w + c][1] + 1) * ha / 2 - ya;
    }
    max_err = std::max({max_err, std::abs(ex), std::abs(ey)});
  }
  std::cout << m.size()
            << " sampled matches, max distance to the reference warp "
            << max_err << " px" << std::endl;
  // The reference warp's own tolerance (MANIFEST: flows/warp <= 5e-7
  // normalised) is ~1e-4 px here; allow float rounding of the pixel conversion.
  EXPECT_LT(max_err, 1e-2);
  EXPECT_EQ(on_grid, m.size());

  // Same seed, same matches.
  const PairMatches again = matcher->MatchDense(a, b);
  EXPECT_EQ(again.xy1, m.xy1);
}

// With no options, the matcher is the compact model shipped in models/: it
// needs no DINOv2 and matches a textured pair related by a homography.
TEST(L2mMatcher, ShippedModelIsTheDefault) {
  L2mMatcherOptions options;
  ASSERT_TRUE(options.Check());
  options.num_samples = 2000;
  options.num_threads = 2;
  auto matcher = CreateL2mMatcher(options);
  const cv::Mat texture = test::RandomTexture(480, 360, 5);
  // B = A seen through a mild homography (rotation, scale, shift).
  const cv::Matx33d H(0.95, -0.08, 30, 0.07, 0.97, 12, 1e-5, 2e-5, 1);
  cv::Mat warped;
  cv::warpPerspective(
      texture, warped, H, texture.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  const PairMatches m = matcher->MatchDense(test::MakeImage(1, texture),
                                            test::MakeImage(2, warped));
  ASSERT_GT(m.size(), 500u);
  size_t correct = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    // COLMAP pixels (centre 0.5) -> OpenCV pixels for H.
    const cv::Point2d p =
        test::ApplyHomography(H, m.xy1[2 * i] - 0.5, m.xy1[2 * i + 1] - 0.5);
    if (std::hypot(p.x + 0.5 - m.xy2[2 * i], p.y + 0.5 - m.xy2[2 * i + 1]) <
        3) {
      ++correct;
    }
  }
  const double fraction = static_cast<double>(correct) / m.size();
  std::printf("shipped l2m_s: %zu matches, %.1f%% within 3 px\n",
              m.size(),
              100 * fraction);
  EXPECT_GT(fraction, 0.8);
}

// Precision: auto everywhere, fp16/bf16 only with CUDA, nothing else.
TEST(L2mMatcher, PrecisionOptionIsChecked) {
  L2mMatcherOptions options;
  std::string error;
  EXPECT_TRUE(options.Check(&error)) << error;
  options.precision = "fp32";
  EXPECT_TRUE(options.Check(&error)) << error;
  options.precision = "fp16";
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("CUDA only"), std::string::npos) << error;
  options.device = "cuda";
  EXPECT_TRUE(options.Check(&error)) << error;
  options.precision = "bf16";
  EXPECT_TRUE(options.Check(&error)) << error;
  options.precision = "half";
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("'half'"), std::string::npos) << error;
}

// Images are resized once and kept for their next pairs: a pair matched
// from the cache (ids known) gives exactly what a fresh matcher gives, and
// images without an id are never taken from it.
TEST(L2mMatcher, PreparedImageCacheChangesNothing) {
  L2mMatcherOptions options;
  options.num_samples = 500;
  options.num_threads = 2;
  const cv::Mat t1 = test::RandomTexture(200, 150, 1);
  const cv::Mat t2 = test::RandomTexture(200, 150, 2);
  const cv::Mat t3 = test::RandomTexture(200, 150, 3);
  auto warm = CreateL2mMatcher(options);
  warm->MatchDense(test::MakeImage(1, t1), test::MakeImage(2, t2));
  const PairMatches cached =
      warm->MatchDense(test::MakeImage(2, t2), test::MakeImage(3, t3));
  auto fresh = CreateL2mMatcher(options);
  const PairMatches direct =
      fresh->MatchDense(test::MakeImage(2, t2), test::MakeImage(3, t3));
  ASSERT_GT(direct.size(), 0u);
  EXPECT_EQ(cached.xy1, direct.xy1);
  EXPECT_EQ(cached.xy2, direct.xy2);
  // Same content under no id: computed again, same result.
  const PairMatches anonymous =
      warm->MatchDense(test::MakeImage(-1, t2), test::MakeImage(-1, t3));
  EXPECT_EQ(anonymous.xy1, direct.xy1);
}

TEST(L2mMatcher, ClearErrorsForMissingOrWrongWeights) {
  L2mMatcherOptions options;
  // A DINOv2 preset without its ViT weights.
  options.preset = "l2m_560";
  options.weights = "some.pth";
  try {
    CreateL2mMatcher(options);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--L2m.dino_weights"),
              std::string::npos)
        << e.what();
  }
  // The shipped model looked up in an empty models folder: the path is named.
  const std::string empty = ::testing::TempDir() + "l2m_no_models";
  std::filesystem::create_directories(empty);
  setenv("L2M_MODELS_DIR", empty.c_str(), 1);
  try {
    CreateL2mMatcher(L2mMatcherOptions());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(empty), std::string::npos) << e.what();
  }
  unsetenv("L2M_MODELS_DIR");
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity";
  options = FixtureOptions(dir);
  options.weights = dir + "/nonexistent.pth";
  EXPECT_THROW(CreateL2mMatcher(options), std::runtime_error);
  // The ViT weights where the matcher weights belong: a strict-load error
  // that names the file.
  options = FixtureOptions(dir);
  options.weights = dir + "/weights_dino.pth";
  try {
    CreateL2mMatcher(options);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("weights_dino.pth"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace l2m
