#include "synth/sky.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <vector>

namespace l2m {

bool SkyOptions::Check(std::string* error) const {
  if (working_size < 32) {
    *error = "Sky.working_size must be >= 32";
    return false;
  }
  if (max_gradient <= 0 || min_area_fraction < 0 || min_top_contact < 0 ||
      brightness_quantile < 0 || brightness_quantile > 1 ||
      max_far_disparity <= 0 || max_far_disparity > 1) {
    *error = "Sky thresholds out of range (see l2m synth sky --help)";
    return false;
  }
  return true;
}

cv::Mat DetectSky(const cv::Mat& image,
                  const cv::Mat& depth,
                  const SkyOptions& options) {
  CV_Assert(image.type() == CV_8UC3);
  const double scale = std::min(1.0,
                                static_cast<double>(options.working_size) /
                                    std::max(image.rows, image.cols));
  const cv::Size small(std::max(8, static_cast<int>(image.cols * scale)),
                       std::max(8, static_cast<int>(image.rows * scale)));
  cv::Mat bgr;
  cv::resize(image, bgr, small, 0, 0, cv::INTER_AREA);
  cv::Mat blurred, hsv, grey;
  cv::GaussianBlur(bgr, blurred, cv::Size(5, 5), 0);
  cv::cvtColor(blurred, hsv, cv::COLOR_BGR2HSV);
  cv::cvtColor(blurred, grey, cv::COLOR_BGR2GRAY);
  grey.convertTo(grey, CV_32F, 1.0 / 255);
  cv::Mat gx, gy, grad;
  cv::Sobel(grey, gx, CV_32F, 1, 0, 3, 1.0 / 8);
  cv::Sobel(grey, gy, CV_32F, 0, 1, 3, 1.0 / 8);
  cv::magnitude(gx, gy, grad);

  cv::Mat far;  // Normalised disparity test at the working size.
  if (!depth.empty()) {
    CV_Assert(depth.type() == CV_32F && depth.size() == image.size());
    cv::Mat d;
    cv::resize(depth, d, small, 0, 0, cv::INTER_NEAREST);
    float lo = 1e30f, hi = 0;
    for (auto it = d.begin<float>(); it != d.end<float>(); ++it)
      if (*it > 0) {
        lo = std::min(lo, 1 / *it);
        hi = std::max(hi, 1 / *it);
      }
    far = cv::Mat(small, CV_8U, cv::Scalar(255));
    if (hi > lo)
      for (int r = 0; r < d.rows; ++r)
        for (int c = 0; c < d.cols; ++c) {
          const float z = d.at<float>(r, c);
          if (z > 0 && (1 / z - lo) / (hi - lo) > options.max_far_disparity)
            far.at<uint8_t>(r, c) = 0;
        }
  }

  cv::Mat candidate(small, CV_8U, cv::Scalar(0));
  std::vector<float> values;
  values.reserve(small.area());
  for (int r = 0; r < small.height; ++r) {
    for (int c = 0; c < small.width; ++c) {
      const cv::Vec3b p = hsv.at<cv::Vec3b>(r, c);
      const double h = p[0], s = p[1] / 255.0, v = p[2] / 255.0;
      values.push_back(static_cast<float>(v));
      const bool blue = h >= options.min_hue && h <= options.max_hue &&
                        s >= options.min_blue_saturation &&
                        v >= options.min_blue_value;
      const bool overcast =
          s <= options.max_grey_saturation && v >= options.min_grey_value;
      if (!(blue || overcast)) continue;
      if (grad.at<float>(r, c) > options.max_gradient) continue;
      if (!far.empty() && !far.at<uint8_t>(r, c)) continue;
      candidate.at<uint8_t>(r, c) = 255;
    }
  }
  const cv::Mat kernel =
      cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(3, 3));
  cv::morphologyEx(candidate, candidate, cv::MORPH_OPEN, kernel);

  std::nth_element(
      values.begin(),
      values.begin() + static_cast<size_t>(options.brightness_quantile *
                                           (values.size() - 1)),
      values.end());
  const float bright = values[static_cast<size_t>(options.brightness_quantile *
                                                  (values.size() - 1))];

  cv::Mat labels, stats, centroids;
  const int n =
      cv::connectedComponentsWithStats(candidate, labels, stats, centroids, 8);
  std::vector<int> top_contact(n, 0);
  for (int c = 0; c < small.width; ++c) ++top_contact[labels.at<int>(0, c)];
  cv::Mat sky_small(small, CV_8U, cv::Scalar(0));
  for (int k = 1; k < n; ++k) {
    if (top_contact[k] < options.min_top_contact * small.width) continue;
    if (stats.at<int>(k, cv::CC_STAT_AREA) <
        options.min_area_fraction * small.area())
      continue;
    std::vector<float> v;
    for (int r = 0; r < small.height; ++r)
      for (int c = 0; c < small.width; ++c)
        if (labels.at<int>(r, c) == k)
          v.push_back(hsv.at<cv::Vec3b>(r, c)[2] / 255.0f);
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    if (v[v.size() / 2] < bright) continue;
    sky_small.setTo(255, labels == k);
  }
  // Close small gaps (birds, wires) inside the kept regions.
  cv::morphologyEx(sky_small, sky_small, cv::MORPH_CLOSE, kernel);
  cv::Mat sky;
  cv::resize(sky_small, sky, image.size(), 0, 0, cv::INTER_LINEAR);
  cv::threshold(sky, sky, 127, 255, cv::THRESH_BINARY);
  return sky;
}

int MaskSkyDepth(const cv::Mat& sky, cv::Mat* depth) {
  CV_Assert(sky.size() == depth->size());
  const int n = cv::countNonZero(sky & (*depth > 0));
  depth->setTo(0, sky);
  return n;
}

}  // namespace l2m
