#include "synth/relight.h"

#include "synth/novel_view.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

namespace l2m {
namespace {

cv::Mat Noise(int w, int h, unsigned seed) {
  cv::Mat image(h, w, CV_8UC3);
  cv::RNG(seed).fill(image, cv::RNG::UNIFORM, 20, 230);
  return image;
}

TEST(Relight, AmbientOnlyReturnsTheInput) {
  const int w = 64, h = 48;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  cv::Mat depth(h, w, CV_32F);
  cv::randu(depth, 1, 3);
  depth(cv::Rect(0, 0, 8, 8)).setTo(0);  // Unknown depth too.
  RelightOptions options;
  options.min_lights = options.max_lights = 0;
  options.min_ambient = options.max_ambient = 1;
  std::mt19937_64 rng(1);
  const Lighting lighting = SampleLighting(options, &rng);
  EXPECT_TRUE(lighting.lights.empty());
  const cv::Mat image = Noise(w, h, 1);
  for (const bool shadows : {false, true}) {
    options.shadows = shadows;
    options.specular = shadows ? 0.5 : 0;
    const cv::Mat out = Relight(image, depth, camera, lighting, options);
    EXPECT_EQ(cv::norm(out, image, cv::NORM_INF), 0);
  }
}

TEST(Relight, SampledLightsFollowTheReferenceRanges) {
  RelightOptions options;
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 200; ++trial) {
    const Lighting lighting = SampleLighting(options, &rng);
    ASSERT_GE(lighting.lights.size(), 2u);
    ASSERT_LE(lighting.lights.size(), 5u);
    for (const auto& light : lighting.lights) {
      EXPECT_GE(light.energy, 400);
      EXPECT_LT(light.energy, 2000);
      for (int ch = 0; ch < 3; ++ch) {
        EXPECT_GE(light.color[ch], 0.5);
        EXPECT_LT(light.color[ch], 1.0);
      }
      // Camera frame: z (Blender y) in {1, 2}; x in (-2, 3); y in (-2, 2).
      EXPECT_TRUE(light.position.z() == 1 || light.position.z() == 2);
      EXPECT_GT(light.position.x(), -2);
      EXPECT_LT(light.position.x(), 3);
      EXPECT_LE(std::abs(light.position.y()), 2);
    }
  }
}

TEST(Relight, NormalsOfAPlaneAndLambertFalloff) {
  const int w = 64, h = 64;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  const cv::Mat depth(h, w, CV_32F, cv::Scalar(2.0f));
  const cv::Mat normals = ComputeNormals(depth, camera, 2);
  const cv::Vec3f n = normals.at<cv::Vec3f>(32, 32);
  EXPECT_NEAR(n[2], -1, 1e-4);
  Lighting lighting;
  lighting.ambient = 0.5;
  PointLight light;
  light.position = Eigen::Vector3d(0, 0, 1);  // 1 unit in front of the wall.
  light.color = Eigen::Vector3d(1, 1, 1);
  light.energy = 1000;
  lighting.lights.push_back(light);
  RelightOptions options;
  const cv::Mat grey(h, w, CV_8UC3, cv::Scalar::all(100));
  const cv::Mat out = Relight(grey, depth, camera, lighting, options);
  // Centre: 100 * (0.5 + 0.01 * 1000 / (4 pi)) = 129.6; corners darker.
  EXPECT_NEAR(out.at<cv::Vec3b>(32, 32)[0], 100 * (0.5 + 10 / (4 * M_PI)), 1.5);
  EXPECT_LT(out.at<cv::Vec3b>(0, 0)[0], out.at<cv::Vec3b>(32, 32)[0]);
}

TEST(Relight, CastShadowsDarkenTheWallBehindAnOccluder) {
  const int w = 96, h = 96;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  cv::Mat depth(h, w, CV_32F, cv::Scalar(3.0f));
  depth(cv::Rect(36, 36, 24, 24)).setTo(1.5f);
  Lighting lighting;
  lighting.ambient = 0.3;
  PointLight light;
  light.position = Eigen::Vector3d(-1, 0, 0.5);  // Left of the camera.
  light.color = Eigen::Vector3d(1, 1, 1);
  light.energy = 2000;
  lighting.lights.push_back(light);
  RelightOptions options;
  options.normal_smoothing = 0;
  const cv::Mat grey(h, w, CV_8UC3, cv::Scalar::all(100));
  const cv::Mat lit = Relight(grey, depth, camera, lighting, options);
  options.shadows = true;
  const cv::Mat shadowed = Relight(grey, depth, camera, lighting, options);
  // The wall right of the occluder is in its shadow; the occluder is lit.
  EXPECT_LT(shadowed.at<cv::Vec3b>(48, 75)[0] + 5,
            lit.at<cv::Vec3b>(48, 75)[0]);
  EXPECT_NEAR(
      shadowed.at<cv::Vec3b>(48, 48)[0], lit.at<cv::Vec3b>(48, 48)[0], 1);
  EXPECT_EQ(shadowed.at<cv::Vec3b>(48, 75)[0], 30);  // Ambient only.
}

TEST(Relight, ConsistentModeShadesCorrespondingPointsAlike) {
  const int w = 96, h = 96;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  LiftingOptions lifting;
  cv::Mat disparity(h, w, CV_32F);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c)
      disparity.at<float>(r, c) = 0.4f + 0.004f * r + 0.002f * c;
  const cv::Mat grey(h, w, CV_8UC3, cv::Scalar::all(120));
  const LiftedImage lifted = LiftImage(grey, disparity, camera, lifting);
  std::mt19937_64 rng(2);
  const Eigen::Matrix4d T = SampleCam2FromCam1(PoseRangeOptions(), &rng);
  NovelViewOptions view_options;
  const NovelView view = RenderNovelView(lifted, camera, T, view_options);
  RelightOptions options;
  const Lighting l1 = SampleLighting(options, &rng);
  const cv::Mat a = Relight(grey, lifted.depth, camera, l1, options);
  const cv::Mat b = Relight(
      view.image, view.depth, camera, TransformLighting(l1, T), options);
  const GtWarp gt = ComputeGtWarp(lifted.depth, camera, view.depth, camera, T);
  double sum = 0;
  int n = 0;
  for (int r = 4; r < h - 4; ++r)
    for (int c = 4; c < w - 4; ++c) {
      if (!gt.valid.at<uint8_t>(r, c)) continue;
      const cv::Vec2f q = gt.warp.at<cv::Vec2f>(r, c);
      const int qc = static_cast<int>(q[0]), qr = static_cast<int>(q[1]);
      if (qc < 4 || qr < 4 || qc >= w - 4 || qr >= h - 4) continue;
      sum += std::abs(a.at<cv::Vec3b>(r, c)[1] - b.at<cv::Vec3b>(qr, qc)[1]);
      ++n;
    }
  ASSERT_GT(n, 500);
  EXPECT_LT(sum / n, 3.0);
}

}  // namespace
}  // namespace l2m
