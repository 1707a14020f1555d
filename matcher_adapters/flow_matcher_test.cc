#include "matcher_adapters/flow_matcher.h"

#include "matcher_adapters/test_images.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

namespace l2m {
namespace {

using test::MakeImage;
using test::RandomTexture;

// Shifts by (tx, ty) pixels (the same in OpenCV and COLMAP pixels).
cv::Mat Translate(const cv::Mat& image, double tx, double ty) {
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, tx, 0, 1, ty);
  cv::Mat out;
  cv::warpAffine(
      image, out, m, image.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return out;
}

double Median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::nth_element(
      values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// Median error of xy2 against (xy1 + t) * scale2 over matches whose truth is
// at least `margin` pixels (image-1 pixels) inside image 1's borders (the
// reflected border content is not a translation).
double MedianTranslationError(const PairMatches& matches,
                              double tx,
                              double ty,
                              double scale_x2,
                              double scale_y2,
                              double width1,
                              double height1,
                              double margin,
                              size_t* num_used) {
  std::vector<double> errors;
  for (size_t i = 0; i < matches.size(); ++i) {
    const double x1 = matches.xy1[2 * i];
    const double y1 = matches.xy1[2 * i + 1];
    const double xt = x1 + tx;
    const double yt = y1 + ty;
    if (xt < margin || yt < margin || xt > width1 - margin ||
        yt > height1 - margin) {
      continue;
    }
    errors.push_back(std::hypot(matches.xy2[2 * i] - xt * scale_x2,
                                matches.xy2[2 * i + 1] - yt * scale_y2));
  }
  *num_used = errors.size();
  return Median(errors);
}

TEST(FlowMatcher, TranslationSameSize) {
  const cv::Mat image1 = RandomTexture(640, 480, 11);
  const double tx = 6.3, ty = -3.7;
  const cv::Mat image2 = Translate(image1, tx, ty);
  auto matcher = CreateFlowMatcher(FlowMatcherOptions());
  EXPECT_EQ(matcher->Name(), "flow");
  EXPECT_TRUE(matcher->IsDense());
  const PairMatches matches =
      matcher->MatchDense(MakeImage(1, image1), MakeImage(2, image2));
  EXPECT_TRUE(matches.idx1.empty());
  ASSERT_EQ(matches.xy1.size(), 2 * matches.size());
  // 160 x 120 grid points, most of them consistent.
  EXPECT_GE(matches.size(), 0.8 * 160 * 120);
  size_t used = 0;
  const double median =
      MedianTranslationError(matches, tx, ty, 1, 1, 640, 480, 16, &used);
  std::printf(
      "[ accuracy ] flow translation: %zu matches, median error "
      "%.3f px\n",
      matches.size(),
      median);
  EXPECT_GE(used, 10000u);
  EXPECT_LT(median, 0.5);
  for (size_t i = 0; i < matches.size(); ++i) {
    ASSERT_GT(matches.scores[i], std::exp(-2.0f) - 1e-6f);
    ASSERT_LE(matches.scores[i], 1.0f);
    ASSERT_GE(matches.xy2[2 * i], 0.0f);
    ASSERT_LE(matches.xy2[2 * i], 640.0f);
  }
}

// Image 1 larger than max_image_size, image 2 another size: both are resized
// to one working size and results scaled back per axis.
TEST(FlowMatcher, TranslationDifferentSizes) {
  const cv::Mat big = RandomTexture(960, 720, 12);
  const double tx = -9.4, ty = 5.2;  // Image-1 pixels.
  cv::Mat image2;
  cv::resize(
      Translate(big, tx, ty), image2, cv::Size(500, 360), 0, 0, cv::INTER_AREA);
  const double sx2 = 500.0 / 960, sy2 = 360.0 / 720;  // Not the same.
  auto matcher = CreateFlowMatcher(FlowMatcherOptions());
  const PairMatches matches =
      matcher->MatchDense(MakeImage(1, big), MakeImage(2, image2));
  size_t used = 0;
  const double median =
      MedianTranslationError(matches, tx, ty, sx2, sy2, 960, 720, 24, &used);
  std::printf(
      "[ accuracy ] flow translation, 960x720 -> 500x360: %zu "
      "matches, median error %.3f px (image-2 pixels)\n",
      matches.size(),
      median);
  EXPECT_GE(used, 10000u);
  EXPECT_LT(median, 0.5);
  // Positions cover each original image.
  float max_x1 = 0, max_x2 = 0;
  for (size_t i = 0; i < matches.size(); ++i) {
    max_x1 = std::max(max_x1, matches.xy1[2 * i]);
    max_x2 = std::max(max_x2, matches.xy2[2 * i]);
  }
  EXPECT_GT(max_x1, 900.0f);
  EXPECT_LE(max_x1, 960.0f);
  EXPECT_LE(max_x2, 500.0f);
}

// A patch of other texture pasted into image 2: points of image 1 that land
// there have no true match and must get a low certainty (score, or no match
// at all: certainty 0).
TEST(FlowMatcher, OccludedRegionHasLowCertainty) {
  const cv::Mat image1 = RandomTexture(640, 480, 13);
  const double tx = 4.0, ty = 3.0;
  cv::Mat image2 = Translate(image1, tx, ty);
  const cv::Rect occluder(300, 160, 160, 160);
  RandomTexture(occluder.width, occluder.height, 99).copyTo(image2(occluder));

  FlowMatcherOptions options;
  options.max_num_matches = 0;
  auto matcher = CreateFlowMatcher(options);
  const PairMatches matches =
      matcher->MatchDense(MakeImage(1, image1), MakeImage(2, image2));
  // Certainty of every grid point of image 1 (COLMAP pixels of a 640 x 480
  // image: no resize), 0 where no match was kept.
  std::map<std::pair<int, int>, float> certainty;
  for (size_t i = 0; i < matches.size(); ++i) {
    certainty[{static_cast<int>(std::floor(matches.xy1[2 * i])),
               static_cast<int>(std::floor(matches.xy1[2 * i + 1]))}] =
        matches.scores[i];
  }
  // True match well inside the occluder (margin for the patch size), or
  // well away from it.
  const cv::Rect inner(occluder.x + 16,
                       occluder.y + 16,
                       occluder.width - 32,
                       occluder.height - 32);
  const cv::Rect outer(occluder.x - 32,
                       occluder.y - 32,
                       occluder.width + 64,
                       occluder.height + 64);
  const cv::Rect border(16, 16, 640 - 32, 480 - 32);
  double inside_sum = 0, outside_sum = 0;
  size_t inside_n = 0, outside_n = 0;
  // Grid of the matcher: step 4, centred ((639 % 4) / 2 = 1, (479 % 4) / 2).
  for (int y = 1; y < 480; y += 4) {
    for (int x = 1; x < 640; x += 4) {
      const auto it = certainty.find({x, y});
      const float c = it == certainty.end() ? 0.0f : it->second;
      const cv::Point2f truth(x + 0.5f + tx, y + 0.5f + ty);
      if (inner.contains(truth)) {
        inside_sum += c;
        ++inside_n;
      } else if (!outer.contains(truth) && border.contains(truth)) {
        outside_sum += c;
        ++outside_n;
      }
    }
  }
  ASSERT_GT(inside_n, 500u);
  const double inside_mean = inside_sum / inside_n;
  const double outside_mean = outside_sum / outside_n;
  std::printf(
      "[ accuracy ] flow occlusion: mean certainty inside %.3f, "
      "outside %.3f\n",
      inside_mean,
      outside_mean);
  EXPECT_GT(outside_mean, 0.9);
  EXPECT_LT(inside_mean, 0.3);
}

TEST(FlowMatcher, MaxNumMatchesThinsEvenly) {
  const cv::Mat image1 = RandomTexture(320, 240, 14);
  const cv::Mat image2 = Translate(image1, 2.5, 1.5);
  FlowMatcherOptions options;
  options.max_num_matches = 500;
  auto matcher = CreateFlowMatcher(options);
  const PairMatches matches =
      matcher->MatchDense(MakeImage(1, image1), MakeImage(2, image2));
  ASSERT_EQ(matches.size(), 500u);
  float min_y = 1e9f, max_y = 0;
  for (size_t i = 0; i < matches.size(); ++i) {
    min_y = std::min(min_y, matches.xy1[2 * i + 1]);
    max_y = std::max(max_y, matches.xy1[2 * i + 1]);
  }
  EXPECT_LT(min_y, 20.0f);
  EXPECT_GT(max_y, 220.0f);
  // Deterministic.
  const PairMatches again =
      matcher->MatchDense(MakeImage(1, image1), MakeImage(2, image2));
  EXPECT_EQ(matches.xy2, again.xy2);
}

TEST(FlowMatcher, BadInput) {
  auto matcher = CreateFlowMatcher(FlowMatcherOptions());
  EXPECT_THROW(matcher->MatchDense(MatcherImage(),
                                   MakeImage(2, RandomTexture(64, 64, 1))),
               std::invalid_argument);
}

TEST(FlowMatcher, SmallImages) {
  auto matcher = CreateFlowMatcher(FlowMatcherOptions());
  const cv::Mat small = RandomTexture(24, 18, 15);
  const PairMatches matches =
      matcher->MatchDense(MakeImage(1, small), MakeImage(2, small));
  EXPECT_GT(matches.size(), 0u);
  for (size_t i = 0; i < matches.size(); ++i) {
    EXPECT_LE(matches.xy2[2 * i], 24.0f);
    EXPECT_LE(matches.xy2[2 * i + 1], 18.0f);
  }
  // Too small for DIS: a clear error instead of OpenCV's.
  const cv::Mat tiny = RandomTexture(7, 5, 16);
  try {
    matcher->MatchDense(MakeImage(1, tiny), MakeImage(2, tiny));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("synthetic_1"), std::string::npos)
        << e.what();
  }
}

TEST(FlowMatcherOptions, Check) {
  EXPECT_TRUE(FlowMatcherOptions().Check());
  FlowMatcherOptions options;
  options.preset = "slow";
  options.grid_step = 0;
  std::string error;
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("preset"), std::string::npos) << error;
  EXPECT_NE(error.find("grid_step"), std::string::npos) << error;
  EXPECT_THROW(CreateFlowMatcher(options), std::invalid_argument);
  for (const char* preset : {"ultrafast", "fast", "medium"}) {
    options = FlowMatcherOptions();
    options.preset = preset;
    EXPECT_TRUE(options.Check()) << preset;
  }
}

}  // namespace
}  // namespace l2m
