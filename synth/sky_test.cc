#include "synth/sky.h"

#include "synth/lifting.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace l2m {
namespace {

cv::Mat Textured(int w, int h, unsigned seed) {
  cv::Mat noise(h / 4, w / 4, CV_8UC3);
  cv::RNG(seed).fill(noise, cv::RNG::UNIFORM, 0, 256);
  cv::Mat image;
  cv::resize(noise, image, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
  return image;
}

// Blue sky gradient over the top `fraction`, textured ground below.
cv::Mat WithSky(int w, int h, double fraction) {
  cv::Mat image = Textured(w, h, 5);
  const int sky_rows = static_cast<int>(fraction * h);
  for (int r = 0; r < sky_rows; ++r)
    for (int c = 0; c < w; ++c)
      image.at<cv::Vec3b>(r, c) =
          cv::Vec3b(230, 170 + r * 40 / sky_rows, 110 + r * 60 / sky_rows);
  return image;
}

TEST(Sky, ImagesWithoutSkyStayUnmasked) {
  const SkyOptions options;
  EXPECT_EQ(
      cv::countNonZero(DetectSky(Textured(320, 240, 1), cv::Mat(), options)),
      0);
  // Flat white wall at the top, but near: with depth it is not sky.
  cv::Mat wall = Textured(320, 240, 2);
  wall(cv::Rect(0, 0, 320, 100)).setTo(cv::Scalar(235, 235, 235));
  cv::Mat depth(240, 320, CV_32F, cv::Scalar(1.0f));
  depth(cv::Rect(0, 120, 320, 120)).setTo(5.0f);  // The floor is farther.
  EXPECT_EQ(cv::countNonZero(DetectSky(wall, depth, options)), 0);
  // A uniform grey image (no structure) has no region brighter than itself
  // to call sky either way; it must not be masked wholesale.
  cv::Mat dark(240, 320, CV_8UC3, cv::Scalar(60, 60, 60));
  EXPECT_EQ(cv::countNonZero(DetectSky(dark, cv::Mat(), options)), 0);
  cv::Mat depth_copy = depth.clone();
  EXPECT_EQ(MaskSkyDepth(DetectSky(dark, cv::Mat(), options), &depth_copy), 0);
  EXPECT_EQ(cv::norm(depth_copy, depth, cv::NORM_INF), 0);
}

TEST(Sky, FindsABlueSkyAndMasksItsDepth) {
  const cv::Mat image = WithSky(320, 240, 0.4);
  const cv::Mat sky = DetectSky(image, cv::Mat(), SkyOptions());
  const double top =
      cv::countNonZero(sky(cv::Rect(0, 0, 320, 90))) / (320.0 * 90);
  const double bottom =
      cv::countNonZero(sky(cv::Rect(0, 110, 320, 130))) / (320.0 * 130);
  EXPECT_GT(top, 0.95);
  EXPECT_LT(bottom, 0.02);
  cv::Mat depth(240, 320, CV_32F, cv::Scalar(2.0f));
  EXPECT_GT(MaskSkyDepth(sky, &depth), 320 * 85);
  EXPECT_EQ(depth.at<float>(10, 10), 0);
  EXPECT_EQ(depth.at<float>(200, 10), 2.0f);
  // With depth: a sky that is near is rejected.
  cv::Mat near(240, 320, CV_32F, cv::Scalar(10.0f));
  near(cv::Rect(0, 0, 320, 96)).setTo(1.0f);
  EXPECT_EQ(cv::countNonZero(DetectSky(image, near, SkyOptions())), 0);
}

TEST(Sky, RealIndoorFramesHaveNoSky) {
  L2M_REQUIRE_SHARED(shared);
  const std::string base = shared + "/data/rgbd_depth_samples/open3d_rgbd/";
  for (const std::string name : {"color/00000.jpg",
                                 "color/00003.jpg",
                                 "other_formats/TUM_color.png",
                                 "other_formats/SUN_color.jpg"}) {
    const cv::Mat image = ReadColorImage(base + name);
    EXPECT_EQ(cv::countNonZero(DetectSky(image, cv::Mat(), SkyOptions())), 0)
        << name;
  }
}

}  // namespace
}  // namespace l2m
