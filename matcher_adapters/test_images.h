#pragma once

// Synthetic images for the matcher tests (test-only, header-only).

#include "matcher_adapters/matcher.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdint>

namespace l2m {
namespace test {

// Multi-scale random texture with blobs and edges (good for SIFT and for
// sub-pixel flow: band-limited, no flat areas). Deterministic in `seed`.
inline cv::Mat RandomTexture(int width, int height, uint64_t seed) {
  cv::RNG rng(seed);
  cv::Mat sum(height, width, CV_32F, cv::Scalar(0));
  const double sigmas[] = {1.5, 4.0, 10.0};
  const double weights[] = {0.5, 1.0, 1.5};
  for (int k = 0; k < 3; ++k) {
    cv::Mat noise(height, width, CV_32F);
    rng.fill(noise, cv::RNG::UNIFORM, -1.0, 1.0);
    cv::GaussianBlur(noise, noise, cv::Size(), sigmas[k]);
    cv::normalize(noise, noise, -1.0, 1.0, cv::NORM_MINMAX);
    sum += weights[k] * noise;
  }
  cv::Mat grey;
  cv::normalize(sum, sum, 20, 235, cv::NORM_MINMAX);
  sum.convertTo(grey, CV_8U);
  const int num_shapes = width * height / 4000;
  for (int i = 0; i < num_shapes; ++i) {
    const cv::Point c(rng.uniform(0, width), rng.uniform(0, height));
    const int r = rng.uniform(3, 12);
    const int value = rng.uniform(0, 256);
    if (i % 2 == 0) {
      cv::circle(grey, c, r, cv::Scalar(value), cv::FILLED, cv::LINE_AA);
    } else {
      cv::rectangle(grey,
                    c,
                    c + cv::Point(r, rng.uniform(3, 12)),
                    cv::Scalar(value),
                    cv::FILLED,
                    cv::LINE_AA);
    }
  }
  cv::GaussianBlur(grey, grey, cv::Size(), 0.7);
  cv::Mat bgr;
  cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
  return bgr;
}

inline MatcherImage MakeImage(int64_t id, const cv::Mat& bgr) {
  MatcherImage image;
  image.image_id = id;
  image.path = "synthetic_" + std::to_string(id);
  image.bgr = bgr;
  return image;
}

// 3x3 homography in OpenCV pixels (centres at integers) -> COLMAP pixels.
inline cv::Matx33d OpenCvToColmapHomography(const cv::Matx33d& h) {
  const cv::Matx33d t(1, 0, 0.5, 0, 1, 0.5, 0, 0, 1);
  return t * h * t.inv();
}

inline cv::Point2d ApplyHomography(const cv::Matx33d& h, double x, double y) {
  const cv::Vec3d p = h * cv::Vec3d(x, y, 1);
  return {p[0] / p[2], p[1] / p[2]};
}

}  // namespace test
}  // namespace l2m
