#include "datasets/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace l2m {
namespace {

cv::Matx33d RotY(double deg) {
  const double a = deg * M_PI / 180;
  return {std::cos(a), 0, std::sin(a), 0, 1, 0, -std::sin(a), 0, std::cos(a)};
}

// Hand-computed with the numpy formula of EVALUATION.md.
TEST(ErrorAuc, HandComputed) {
  // errors [1, 3]: curve (0,0) (1,.5) (3,1); t=5 adds (5,1):
  // .5*.5*1 + .5*1.5*2 + 1*2 = .25 + 1.5 + 2 = 3.75 -> 0.75.
  // t=2: searchsorted([0,1,3], 2) = 2 -> (0,0) (1,.5) (2,.5): .25+.5 = .75 ->
  // .375. t=0.5: (0,0) (.5,0) -> 0.
  const auto auc = ErrorAuc({3, 1}, {5, 2, 0.5});
  EXPECT_DOUBLE_EQ(auc[0], 0.75);
  EXPECT_DOUBLE_EQ(auc[1], 0.375);
  EXPECT_DOUBLE_EQ(auc[2], 0.0);
}

TEST(ErrorAuc, FailuresAndTiesAtTheThreshold) {
  const double inf = std::numeric_limits<double>::infinity();
  // [0, inf]: recall .5 from 0 on -> 0.5 at every threshold.
  const auto a = ErrorAuc({inf, 0}, {5, 10, 20});
  EXPECT_DOUBLE_EQ(a[0], 0.5);
  EXPECT_DOUBLE_EQ(a[2], 0.5);
  // An error equal to the threshold does not count (searchsorted left).
  EXPECT_DOUBLE_EQ(ErrorAuc({2, 2}, {2})[0], 0.0);
  // 90 deg failures (RoMa) are as bad as inf below 20 deg.
  EXPECT_DOUBLE_EQ(ErrorAuc({90, 0}, {20})[0], 0.5);
  // Four errors 1,2,3,4 at t=5: trapezoids .125+.375+.625+.875 + 1*1 = 3 -> .6.
  EXPECT_NEAR(ErrorAuc({4, 2, 3, 1}, {5})[0], 0.6, 1e-15);
  EXPECT_EQ(ErrorAuc({}, {5})[0], 0.0);
}

TEST(PoseError, RotationAndFoldedTranslation) {
  EXPECT_NEAR(RotationErrorDeg(RotY(10), RotY(3)), 7.0, 1e-9);
  EXPECT_NEAR(RotationErrorDeg(RotY(0), RotY(0)), 0.0, 1e-6);
  EXPECT_NEAR(TranslationErrorDeg({1, 0, 0}, {0, 1, 0}), 90.0, 1e-9);
  // Opposite directions are the same essential matrix: folded to 0.
  EXPECT_NEAR(TranslationErrorDeg({-2, 0, 0}, {1, 0, 0}), 0.0, 1e-6);
  // 120 deg folds to 60; scale does not matter.
  EXPECT_NEAR(
      TranslationErrorDeg({std::cos(2 * M_PI / 3), std::sin(2 * M_PI / 3), 0},
                          {5, 0, 0}),
      60.0,
      1e-9);
  EXPECT_EQ(TranslationErrorDeg({0, 0, 0}, {1, 0, 0}), 90.0);
  const PoseError e =
      ComputePoseError(RotY(4), {1, 0, 0}, RotY(0), {1, 0.1, 0});
  EXPECT_NEAR(e.rotation_deg, 4.0, 1e-9);
  EXPECT_NEAR(e.translation_deg, std::atan(0.1) * 180 / M_PI, 1e-9);
  EXPECT_NEAR(e.max_deg, 5.710593137499643, 1e-9);
}

TEST(HomographyError, CornerErrorOfATranslation) {
  const cv::Matx33d H_gt = cv::Matx33d::eye();
  const cv::Matx33d H_est(1, 0, 3, 0, 1, 4, 0, 0, 1);  // 5 px at every corner.
  EXPECT_NEAR(HomographyCornerError(H_est, H_gt, ImageCornerPixels(640, 480)),
              5.0,
              1e-12);
  // A scale about the origin: corners (0.5,0.5) (0.5,9.5) (9.5,.5) (9.5,9.5) of
  // a 10x10 image move by 0.1 * |c|: mean of .0707.., .9513..,
  // .9513.., 1.3435..
  const cv::Matx33d S(1.1, 0, 0, 0, 1.1, 0, 0, 0, 1);
  const double expected =
      0.1 *
      (std::hypot(.5, .5) + 2 * std::hypot(.5, 9.5) + std::hypot(9.5, 9.5)) / 4;
  EXPECT_NEAR(HomographyCornerError(S, H_gt, ImageCornerPixels(10, 10)),
              expected,
              1e-12);
}

TEST(HomographyError, ShiftChangesOnlyTheConvention) {
  // H in 1-based pixels maps p to q; in COLMAP pixels it maps p-.5 to q-.5.
  const cv::Matx33d H(1.2, 0.1, 5, -0.05, 0.9, 7, 1e-4, 2e-4, 1);
  const cv::Point2d p(100, 50), q = ApplyHomography(H, p);
  const cv::Point2d q2 =
      ApplyHomography(ShiftHomography(H, -0.5), p - cv::Point2d(.5, .5));
  EXPECT_NEAR(q2.x, q.x - 0.5, 1e-9);
  EXPECT_NEAR(q2.y, q.y - 0.5, 1e-9);
}

TEST(Epipolar, DistanceOfAnExactAndAnOffsetMatch) {
  const cv::Matx33d R = RotY(0);
  const cv::Vec3d t(1, 0, 0);  // Pure x translation: epipolar lines are rows.
  const cv::Matx33d E = EssentialFromPose(R, t);
  // A point at depth 2: x2 = x1 + 0.5.
  EXPECT_NEAR(
      SymmetricEpipolarDistanceSq({0.1, 0.2}, {0.6, 0.2}, E), 0.0, 1e-15);
  // 0.01 off the line in y: squared distance 1e-4 to each line -> 2e-4.
  EXPECT_NEAR(
      SymmetricEpipolarDistanceSq({0.1, 0.2}, {0.6, 0.21}, E), 2e-4, 1e-12);
}

}  // namespace
}  // namespace l2m
