#include "colmap_plugin/match_visualization.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

namespace l2m {

void MatchPlotOptions::Check() const {
  if (max_lines < 0) throw std::invalid_argument("max_lines must be >= 0");
  if (max_height < 16) throw std::invalid_argument("max_height must be >= 16");
}

cv::Mat DrawMatchPlot(const cv::Mat& bgr1,
                      const cv::Mat& bgr2,
                      const PairMatches& matches,
                      const MatchPlotOptions& options) {
  options.Check();
  const int height =
      std::min(options.max_height, std::max(bgr1.rows, bgr2.rows));
  const double s1 = static_cast<double>(height) / bgr1.rows,
               s2 = static_cast<double>(height) / bgr2.rows;
  cv::Mat a, b;
  cv::resize(bgr1,
             a,
             cv::Size(std::max(1, int(bgr1.cols * s1 + 0.5)), height),
             0,
             0,
             cv::INTER_AREA);
  cv::resize(bgr2,
             b,
             cv::Size(std::max(1, int(bgr2.cols * s2 + 0.5)), height),
             0,
             0,
             cv::INTER_AREA);
  cv::Mat canvas;
  cv::hconcat(a, b, canvas);
  // Dim the photos so the lines stand out.
  canvas.convertTo(canvas, -1, 0.7, 0);

  std::vector<size_t> order(matches.size());
  std::iota(order.begin(), order.end(), 0);
  if (order.size() > static_cast<size_t>(options.max_lines)) {
    std::mt19937_64 rng(options.seed);
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(static_cast<size_t>(options.max_lines));
  }
  // Low scores first so the confident matches end up on top.
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) {
    return matches.scores[i] < matches.scores[j];
  });
  cv::Mat ramp(1, 256, CV_8U);
  for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(i) = static_cast<uint8_t>(i);
  cv::Mat colours;
  cv::applyColorMap(ramp, colours, cv::COLORMAP_TURBO);
  const int thickness = std::max(1, height / 400);
  for (size_t i : order) {
    const int level = std::clamp(int(matches.scores[i] * 255 + 0.5), 0, 255);
    const cv::Vec3b c = colours.at<cv::Vec3b>(level);
    // COLMAP pixels -> OpenCV pixel indices (centre of the top-left is 0).
    const cv::Point2d p1(matches.xy1[2 * i] * s1 - 0.5,
                         matches.xy1[2 * i + 1] * s1 - 0.5);
    const cv::Point2d p2(matches.xy2[2 * i] * s2 - 0.5 + a.cols,
                         matches.xy2[2 * i + 1] * s2 - 0.5);
    const cv::Scalar colour(c[0], c[1], c[2]);
    cv::line(canvas,
             cv::Point(cvRound(p1.x), cvRound(p1.y)),
             cv::Point(cvRound(p2.x), cvRound(p2.y)),
             colour,
             thickness,
             cv::LINE_AA);
    cv::circle(canvas,
               cv::Point(cvRound(p1.x), cvRound(p1.y)),
               2 * thickness,
               colour,
               cv::FILLED,
               cv::LINE_AA);
    cv::circle(canvas,
               cv::Point(cvRound(p2.x), cvRound(p2.y)),
               2 * thickness,
               colour,
               cv::FILLED,
               cv::LINE_AA);
  }
  return canvas;
}

cv::Mat CertaintyToGrey(const cv::Mat& certainty) {
  if (certainty.type() != CV_32F) {
    throw std::invalid_argument("certainty must be CV_32F");
  }
  cv::Mat grey;
  certainty.convertTo(grey, CV_8U, 255.0, 0.0);  // Rounds and saturates.
  return grey;
}

cv::Mat DrawWarp(const cv::Mat& bgr1,
                 const cv::Mat& bgr2,
                 const cv::Mat& warp,
                 const cv::Mat& certainty) {
  if (warp.type() != CV_32FC4 || certainty.type() != CV_32F ||
      warp.size() != certainty.size() || warp.cols % 2 != 0) {
    throw std::invalid_argument(
        "DrawWarp: warp must be CV_32FC4 (H, 2W) and certainty CV_32F of the "
        "same size");
  }
  const int h = warp.rows, w = warp.cols / 2;
  cv::Mat out(h, 2 * w, CV_8UC3);
  // Left half: A's grid, colours of image 2 at (x_B, y_B); right half: B's
  // grid, colours of image 1 at (x_A, y_A).
  for (int half = 0; half < 2; ++half) {
    const cv::Mat& source = half == 0 ? bgr2 : bgr1;
    cv::Mat map_x(h, w, CV_32F), map_y(h, w, CV_32F);
    for (int r = 0; r < h; ++r) {
      const cv::Vec4f* row = warp.ptr<cv::Vec4f>(r) + half * w;
      for (int c = 0; c < w; ++c) {
        const float x = half == 0 ? row[c][2] : row[c][0];
        const float y = half == 0 ? row[c][3] : row[c][1];
        // Normalised -> pixel index: W/2 (x + 1) is the COLMAP pixel.
        map_x.at<float>(r, c) = source.cols * 0.5f * (x + 1.0f) - 0.5f;
        map_y.at<float>(r, c) = source.rows * 0.5f * (y + 1.0f) - 0.5f;
      }
    }
    cv::Mat fetched;
    cv::remap(source,
              fetched,
              map_x,
              map_y,
              cv::INTER_LINEAR,
              cv::BORDER_CONSTANT,
              cv::Scalar(255, 255, 255));
    for (int r = 0; r < h; ++r) {
      const float* cert = certainty.ptr<float>(r) + half * w;
      const cv::Vec3b* in = fetched.ptr<cv::Vec3b>(r);
      cv::Vec3b* o = out.ptr<cv::Vec3b>(r) + half * w;
      for (int c = 0; c < w; ++c) {
        const float k = std::clamp(cert[c], 0.0f, 1.0f);
        for (int ch = 0; ch < 3; ++ch) {
          o[c][ch] = cv::saturate_cast<uint8_t>(k * in[c][ch] + (1 - k) * 255);
        }
      }
    }
  }
  return out;
}

}  // namespace l2m
