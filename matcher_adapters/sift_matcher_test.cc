#include "matcher_adapters/sift_matcher.h"

#include "matcher_adapters/image_io.h"
#include "matcher_adapters/test_images.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/calib3d.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

namespace l2m {
namespace {

using test::ApplyHomography;
using test::MakeImage;
using test::RandomTexture;

struct Accuracy {
  size_t num_matches = 0;
  double inlier_fraction = 0;  // Within the tolerance of the truth.
  double median_error = 0;
};

// Errors of the matches against xy2 = truth(xy1), all in COLMAP pixels.
template <typename Truth>
Accuracy Measure(const PairMatches& matches, Truth truth, double tolerance) {
  Accuracy accuracy;
  accuracy.num_matches = matches.size();
  if (matches.size() == 0) return accuracy;
  std::vector<double> errors;
  size_t good = 0;
  for (size_t i = 0; i < matches.size(); ++i) {
    const cv::Point2d expected =
        truth(matches.xy1[2 * i], matches.xy1[2 * i + 1]);
    const double error = std::hypot(matches.xy2[2 * i] - expected.x,
                                    matches.xy2[2 * i + 1] - expected.y);
    errors.push_back(error);
    if (error < tolerance) ++good;
  }
  std::nth_element(
      errors.begin(), errors.begin() + errors.size() / 2, errors.end());
  accuracy.median_error = errors[errors.size() / 2];
  accuracy.inlier_fraction = static_cast<double>(good) / matches.size();
  return accuracy;
}

// A mild homography in OpenCV pixels: rotation, scale, perspective, shift.
cv::Matx33d TestHomography(int width, int height) {
  const cv::Mat rotation = cv::getRotationMatrix2D(
      cv::Point2f(width / 2.0f, height / 2.0f), 8.0, 0.9);
  cv::Matx33d h(rotation.at<double>(0, 0),
                rotation.at<double>(0, 1),
                rotation.at<double>(0, 2) + 7.3,
                rotation.at<double>(1, 0),
                rotation.at<double>(1, 1),
                rotation.at<double>(1, 2) - 4.6,
                0,
                0,
                1);
  const cv::Matx33d perspective(1, 0, 0, 0, 1, 0, 2e-5, -1e-5, 1);
  return perspective * h;
}

PairMatches ExtractAndMatch(Matcher* matcher,
                            const cv::Mat& bgr1,
                            const cv::Mat& bgr2) {
  const ImageFeatures f1 = matcher->Extract(MakeImage(1, bgr1));
  const ImageFeatures f2 = matcher->Extract(MakeImage(2, bgr2));
  return matcher->MatchFeatures(f1, f2);
}

void Report(const char* name, const Accuracy& a) {
  std::printf(
      "[ accuracy ] %s: %zu matches, %.1f%% within tolerance, "
      "median error %.3f px\n",
      name,
      a.num_matches,
      100 * a.inlier_fraction,
      a.median_error);
}

TEST(SiftMatcher, HomographyAccuracyInColmapPixels) {
  const cv::Mat image1 = RandomTexture(640, 480, 1);
  const cv::Matx33d h = TestHomography(640, 480);
  cv::Mat image2;
  cv::warpPerspective(image1,
                      image2,
                      cv::Mat(h),
                      image1.size(),
                      cv::INTER_LINEAR,
                      cv::BORDER_REFLECT);
  const cv::Matx33d h_colmap = test::OpenCvToColmapHomography(h);

  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  EXPECT_EQ(matcher->Name(), "sift");
  EXPECT_FALSE(matcher->IsDense());
  const PairMatches matches = ExtractAndMatch(matcher.get(), image1, image2);
  ASSERT_EQ(matches.idx1.size(), matches.size());
  ASSERT_EQ(matches.idx2.size(), matches.size());
  const Accuracy accuracy = Measure(
      matches,
      [&](double x, double y) { return ApplyHomography(h_colmap, x, y); },
      1.5);
  Report("sift homography", accuracy);
  EXPECT_GE(accuracy.num_matches, 300u);
  EXPECT_GE(accuracy.inlier_fraction, 0.95);
  EXPECT_LT(accuracy.median_error, 0.5);
  for (float s : matches.scores) {
    EXPECT_GE(s, 0.0f);
    EXPECT_LE(s, 1.0f);
  }
}

// Image 2 at half size: catches a missing 0.5 offset or a wrong scale.
TEST(SiftMatcher, HomographyWithHalfSizeImage2) {
  const cv::Mat image1 = RandomTexture(640, 480, 2);
  const cv::Matx33d h = TestHomography(640, 480);
  cv::Mat warped;
  cv::warpPerspective(image1,
                      warped,
                      cv::Mat(h),
                      image1.size(),
                      cv::INTER_LINEAR,
                      cv::BORDER_REFLECT);
  cv::Mat image2;
  cv::resize(warped, image2, cv::Size(320, 240), 0, 0, cv::INTER_AREA);
  // COLMAP pixels scale exactly with the image (corner origin).
  const cv::Matx33d h_colmap = cv::Matx33d(0.5, 0, 0, 0, 0.5, 0, 0, 0, 1) *
                               test::OpenCvToColmapHomography(h);

  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  const PairMatches matches = ExtractAndMatch(matcher.get(), image1, image2);
  const Accuracy accuracy = Measure(
      matches,
      [&](double x, double y) { return ApplyHomography(h_colmap, x, y); },
      1.5);
  Report("sift homography, image 2 half size", accuracy);
  EXPECT_GE(accuracy.num_matches, 100u);
  EXPECT_GE(accuracy.inlier_fraction, 0.95);
  EXPECT_LT(accuracy.median_error, 0.5);
}

// Both images larger than max_image_size: keypoints are scaled back.
TEST(SiftMatcher, DownscaledExtractionScalesKeypointsBack) {
  const cv::Mat image1 = RandomTexture(900, 700, 3);
  const cv::Matx33d h = TestHomography(900, 700);
  cv::Mat image2;
  cv::warpPerspective(image1,
                      image2,
                      cv::Mat(h),
                      image1.size(),
                      cv::INTER_LINEAR,
                      cv::BORDER_REFLECT);
  const cv::Matx33d h_colmap = test::OpenCvToColmapHomography(h);

  SiftMatcherOptions options;
  options.max_image_size = 450;
  auto matcher = CreateSiftMatcher(options);
  const ImageFeatures features1 = matcher->Extract(MakeImage(1, image1));
  for (const Keypoint& kp : features1.keypoints) {
    ASSERT_GE(kp.x, 0.0f);
    ASSERT_LE(kp.x, 900.0f);
    ASSERT_GE(kp.y, 0.0f);
    ASSERT_LE(kp.y, 700.0f);
  }
  const PairMatches matches =
      matcher->MatchFeatures(features1, matcher->Extract(MakeImage(2, image2)));
  // Localisation error doubles with the downscale: tolerance 2 x 1.5 px.
  const Accuracy accuracy = Measure(
      matches,
      [&](double x, double y) { return ApplyHomography(h_colmap, x, y); },
      3.0);
  Report("sift homography, extraction at 1/2 size (3 px)", accuracy);
  EXPECT_GE(accuracy.num_matches, 100u);
  EXPECT_GE(accuracy.inlier_fraction, 0.95);
  EXPECT_LT(accuracy.median_error, 1.0);
}

// A 90-degree clockwise rotation: positions, orientation (+pi/2 in image
// axes, y down) and scale (unchanged) all follow.
TEST(SiftMatcher, RotationGivesOrientationConvention) {
  const cv::Mat image1 = RandomTexture(480, 360, 4);
  cv::Mat image2;
  cv::rotate(image1, image2, cv::ROTATE_90_CLOCKWISE);
  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  const ImageFeatures f1 = matcher->Extract(MakeImage(1, image1));
  const ImageFeatures f2 = matcher->Extract(MakeImage(2, image2));
  const PairMatches matches = matcher->MatchFeatures(f1, f2);
  const double height1 = image1.rows;
  const Accuracy accuracy = Measure(
      matches,
      [&](double x, double y) { return cv::Point2d(height1 - y, x); },
      1.5);
  Report("sift rotation 90", accuracy);
  EXPECT_GE(accuracy.num_matches, 200u);
  EXPECT_GE(accuracy.inlier_fraction, 0.95);
  // A constant offset (e.g. OpenCV's upscale bias) shows up here doubled.
  EXPECT_LT(accuracy.median_error, 0.25);

  std::vector<double> angle_diffs;
  std::vector<double> scale_ratios;
  for (size_t i = 0; i < matches.size(); ++i) {
    const Keypoint& k1 = f1.keypoints[matches.idx1[i]];
    const Keypoint& k2 = f2.keypoints[matches.idx2[i]];
    EXPECT_FLOAT_EQ(k1.x, matches.xy1[2 * i]);
    EXPECT_FLOAT_EQ(k2.y, matches.xy2[2 * i + 1]);
    double d = k2.orientation - k1.orientation;
    d = std::remainder(d, 2 * CV_PI);
    angle_diffs.push_back(d);
    scale_ratios.push_back(k2.scale / k1.scale);
    EXPECT_GE(k1.orientation, -CV_PI - 1e-4);
    EXPECT_LE(k1.orientation, CV_PI + 1e-4);
  }
  std::sort(angle_diffs.begin(), angle_diffs.end());
  std::sort(scale_ratios.begin(), scale_ratios.end());
  EXPECT_NEAR(angle_diffs[angle_diffs.size() / 2], CV_PI / 2, 0.05);
  EXPECT_NEAR(scale_ratios[scale_ratios.size() / 2], 1.0, 0.05);
}

TEST(SiftMatcher, KeypointScaleFollowsImageScale) {
  const cv::Mat image1 = RandomTexture(640, 480, 5);
  cv::Mat image2;
  cv::resize(image1, image2, cv::Size(320, 240), 0, 0, cv::INTER_AREA);
  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  const ImageFeatures f1 = matcher->Extract(MakeImage(1, image1));
  const ImageFeatures f2 = matcher->Extract(MakeImage(2, image2));
  const PairMatches matches = matcher->MatchFeatures(f1, f2);
  const Accuracy accuracy = Measure(
      matches,
      [](double x, double y) { return cv::Point2d(x / 2, y / 2); },
      1.5);
  Report("sift half-size copy", accuracy);
  EXPECT_GE(accuracy.inlier_fraction, 0.95);
  ASSERT_GE(matches.size(), 50u);
  std::vector<double> ratios;
  for (size_t i = 0; i < matches.size(); ++i) {
    ratios.push_back(f2.keypoints[matches.idx2[i]].scale /
                     f1.keypoints[matches.idx1[i]].scale);
  }
  std::sort(ratios.begin(), ratios.end());
  EXPECT_NEAR(ratios[ratios.size() / 2], 0.5, 0.05);
}

TEST(SiftMatcher, RootSiftOnAndOff) {
  const cv::Mat image1 = RandomTexture(480, 360, 6);
  cv::Mat image2;
  const cv::Matx33d h = TestHomography(480, 360);
  cv::warpPerspective(image1,
                      image2,
                      cv::Mat(h),
                      image1.size(),
                      cv::INTER_LINEAR,
                      cv::BORDER_REFLECT);
  const cv::Matx33d h_colmap = test::OpenCvToColmapHomography(h);
  std::vector<ImageFeatures> features;
  for (bool root_sift : {false, true}) {
    SiftMatcherOptions options;
    options.root_sift = root_sift;
    auto matcher = CreateSiftMatcher(options);
    const ImageFeatures f1 = matcher->Extract(MakeImage(1, image1));
    ASSERT_EQ(f1.descriptor_dim, 128);
    ASSERT_EQ(f1.descriptors.size(), f1.keypoints.size() * 128);
    // Unit-normalised, times 512: row norms near 512 (a little less where
    // entries were clamped at 255).
    for (size_t i = 0; i < f1.keypoints.size(); ++i) {
      double norm2 = 0;
      for (int d = 0; d < 128; ++d) {
        const double v = f1.descriptors[i * 128 + d];
        norm2 += v * v;
      }
      ASSERT_NEAR(std::sqrt(norm2), 512.0, 20.0) << "row " << i;
    }
    const PairMatches matches =
        matcher->MatchFeatures(f1, matcher->Extract(MakeImage(2, image2)));
    const Accuracy accuracy = Measure(
        matches,
        [&](double x, double y) { return ApplyHomography(h_colmap, x, y); },
        1.5);
    Report(root_sift ? "sift root_sift=true" : "sift root_sift=false",
           accuracy);
    EXPECT_GE(accuracy.num_matches, 200u);
    EXPECT_GE(accuracy.inlier_fraction, 0.95);
    features.push_back(f1);
  }
  // Same keypoints, different descriptors.
  ASSERT_EQ(features[0].keypoints.size(), features[1].keypoints.size());
  EXPECT_NE(features[0].descriptors, features[1].descriptors);
}

TEST(SiftMatcher, DeterministicAndCapped) {
  const cv::Mat image = RandomTexture(640, 480, 7);
  SiftMatcherOptions options;
  options.max_num_features = 300;
  auto matcher = CreateSiftMatcher(options);
  const ImageFeatures a = matcher->Extract(MakeImage(1, image));
  const ImageFeatures b = matcher->Extract(MakeImage(1, image));
  EXPECT_EQ(a.keypoints.size(), 300u);
  ASSERT_EQ(a.keypoints.size(), b.keypoints.size());
  for (size_t i = 0; i < a.keypoints.size(); ++i) {
    EXPECT_EQ(a.keypoints[i].x, b.keypoints[i].x);
    EXPECT_EQ(a.keypoints[i].y, b.keypoints[i].y);
  }
  EXPECT_EQ(a.descriptors, b.descriptors);
  // OpenCV lists keypoints in a thread-dependent order: ids must not follow.
  const int threads = cv::getNumThreads();
  cv::setNumThreads(1);
  const ImageFeatures c = matcher->Extract(MakeImage(1, image));
  cv::setNumThreads(threads);
  ASSERT_EQ(a.keypoints.size(), c.keypoints.size());
  for (size_t i = 0; i < a.keypoints.size(); ++i) {
    EXPECT_EQ(a.keypoints[i].x, c.keypoints[i].x);
    EXPECT_EQ(a.keypoints[i].y, c.keypoints[i].y);
  }
  EXPECT_EQ(a.descriptors, c.descriptors);
  const PairMatches m1 = matcher->MatchFeatures(a, b);
  EXPECT_EQ(m1.size(), a.keypoints.size());  // Self-match is mutual, exact.
}

TEST(SiftMatcher, ConcurrentCallsOnOneMatcher) {
  const cv::Mat image1 = RandomTexture(320, 240, 17);
  const cv::Mat image2 = RandomTexture(320, 240, 18);
  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  const ImageFeatures serial1 = matcher->Extract(MakeImage(1, image1));
  const ImageFeatures serial2 = matcher->Extract(MakeImage(2, image2));
  ImageFeatures parallel1, parallel2;
  std::thread t1([&] { parallel1 = matcher->Extract(MakeImage(1, image1)); });
  std::thread t2([&] { parallel2 = matcher->Extract(MakeImage(2, image2)); });
  t1.join();
  t2.join();
  EXPECT_EQ(parallel1.descriptors, serial1.descriptors);
  EXPECT_EQ(parallel2.descriptors, serial2.descriptors);
}

TEST(SiftMatcher, CrossCheckOnlyRemovesMatches) {
  const cv::Mat image1 = RandomTexture(480, 360, 8);
  const cv::Mat image2 = RandomTexture(480, 360, 9);  // Unrelated.
  SiftMatcherOptions options;
  options.max_ratio = 1.0;
  options.max_distance = 2.0;
  options.cross_check = false;
  auto loose = CreateSiftMatcher(options);
  options.cross_check = true;
  auto mutual = CreateSiftMatcher(options);
  const ImageFeatures f1 = loose->Extract(MakeImage(1, image1));
  const ImageFeatures f2 = loose->Extract(MakeImage(2, image2));
  const PairMatches all = loose->MatchFeatures(f1, f2);
  const PairMatches kept = mutual->MatchFeatures(f1, f2);
  EXPECT_GT(all.size(), kept.size());
  // Mutual matches are one-to-one.
  std::vector<uint32_t> idx2 = kept.idx2;
  std::sort(idx2.begin(), idx2.end());
  EXPECT_EQ(std::adjacent_find(idx2.begin(), idx2.end()), idx2.end());
  // With the default ratio test, unrelated images give few matches.
  auto strict = CreateSiftMatcher(SiftMatcherOptions());
  EXPECT_LT(strict->MatchFeatures(f1, f2).size(), f1.keypoints.size() / 20);
}

// The one-pass GEMM matcher equals OpenCV's brute force, pair for pair.
TEST(SiftMatcher, SameMatchesAsOpenCvBruteForce) {
  const cv::Mat image1 = RandomTexture(480, 360, 10);
  cv::Mat image2;
  const cv::Matx33d h = TestHomography(480, 360);
  cv::warpPerspective(image1,
                      image2,
                      cv::Mat(h),
                      image1.size(),
                      cv::INTER_LINEAR,
                      cv::BORDER_REFLECT);
  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  const ImageFeatures f1 = matcher->Extract(MakeImage(1, image1));
  const ImageFeatures f2 = matcher->Extract(MakeImage(2, image2));
  const PairMatches matches = matcher->MatchFeatures(f1, f2);

  const auto as_float = [](const ImageFeatures& f) {
    cv::Mat out;
    cv::Mat(static_cast<int>(f.keypoints.size()),
            128,
            CV_8U,
            const_cast<uint8_t*>(f.descriptors.data()))
        .convertTo(out, CV_32F);
    return out;
  };
  const cv::Mat d1 = as_float(f1);
  const cv::Mat d2 = as_float(f2);
  cv::BFMatcher bf(cv::NORM_L2);
  std::vector<std::vector<cv::DMatch>> knn12, knn21;
  bf.knnMatch(d1, d2, knn12, 2);
  bf.knnMatch(d2, d1, knn21, 1);
  std::vector<std::pair<uint32_t, uint32_t>> expected;
  for (const auto& knn : knn12) {
    if (knn.size() < 2 || knn[0].distance > 0.7f * 512) continue;
    if (knn[0].distance / knn[1].distance >= 0.8f) continue;
    if (knn21[knn[0].trainIdx][0].trainIdx != knn[0].queryIdx) continue;
    expected.emplace_back(knn[0].queryIdx, knn[0].trainIdx);
  }
  std::vector<std::pair<uint32_t, uint32_t>> actual;
  for (size_t i = 0; i < matches.size(); ++i) {
    actual.emplace_back(matches.idx1[i], matches.idx2[i]);
  }
  EXPECT_GT(actual.size(), 100u);
  EXPECT_EQ(actual, expected);
}

TEST(SiftMatcher, BadInput) {
  auto matcher = CreateSiftMatcher(SiftMatcherOptions());
  EXPECT_THROW(matcher->Extract(MatcherImage()), std::invalid_argument);
  ImageFeatures empty;
  EXPECT_EQ(matcher->MatchFeatures(empty, empty).size(), 0u);
  ImageFeatures broken;
  broken.keypoints.resize(2);
  broken.descriptor_dim = 128;
  broken.descriptors.resize(128);  // One row for two keypoints.
  EXPECT_THROW(matcher->MatchFeatures(broken, broken), std::invalid_argument);
}

TEST(SiftMatcherOptions, Check) {
  EXPECT_TRUE(SiftMatcherOptions().Check());
  SiftMatcherOptions options;
  options.max_ratio = 1.5;
  options.max_num_features = 0;
  std::string error;
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("max_ratio"), std::string::npos) << error;
  EXPECT_NE(error.find("max_num_features"), std::string::npos) << error;
  EXPECT_THROW(CreateSiftMatcher(options), std::invalid_argument);
}

// Real photos: two overlapping views of the Sacre-Coeur.
TEST(SiftMatcher, SacreCoeurPhotos) {
  L2M_REQUIRE_SHARED(dir);
  const std::string images = dir + "/data/sacre_coeur_hloc/images/";
  const MatcherImage image1 =
      LoadMatcherImage(1, images + "02928139_3448003521.jpg");
  const MatcherImage image2 =
      LoadMatcherImage(2, images + "17295357_9106075285.jpg");
  SiftMatcherOptions options;
  options.max_num_features = 4096;  // Keeps the test fast.
  auto matcher = CreateSiftMatcher(options);
  const PairMatches matches = matcher->MatchFeatures(matcher->Extract(image1),
                                                     matcher->Extract(image2));
  EXPECT_GE(matches.size(), 100u);
  // Most matches must agree with one epipolar geometry.
  std::vector<cv::Point2f> points1, points2;
  for (size_t i = 0; i < matches.size(); ++i) {
    points1.emplace_back(matches.xy1[2 * i], matches.xy1[2 * i + 1]);
    points2.emplace_back(matches.xy2[2 * i], matches.xy2[2 * i + 1]);
  }
  cv::Mat inlier_mask;
  cv::findFundamentalMat(
      points1, points2, cv::FM_RANSAC, 2.0, 0.999, inlier_mask);
  const double inlier_fraction =
      inlier_mask.empty()
          ? 0.0
          : cv::countNonZero(inlier_mask) / static_cast<double>(matches.size());
  std::printf(
      "[ accuracy ] sift sacre_coeur: %zu matches, %.1f%% "
      "fundamental-matrix inliers (2 px)\n",
      matches.size(),
      100 * inlier_fraction);
  EXPECT_GE(inlier_fraction, 0.5);
  for (size_t i = 0; i < matches.size(); ++i) {
    ASSERT_LE(matches.xy1[2 * i], image1.bgr.cols);
    ASSERT_LE(matches.xy2[2 * i + 1], image2.bgr.rows);
  }
}

}  // namespace
}  // namespace l2m
