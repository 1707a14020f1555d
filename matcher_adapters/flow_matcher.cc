#include "matcher_adapters/flow_matcher.h"

#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace {

bool PresetFromString(const std::string& name, int* preset) {
  if (name == "ultrafast") {
    *preset = cv::DISOpticalFlow::PRESET_ULTRAFAST;
  } else if (name == "fast") {
    *preset = cv::DISOpticalFlow::PRESET_FAST;
  } else if (name == "medium") {
    *preset = cv::DISOpticalFlow::PRESET_MEDIUM;
  } else {
    return false;
  }
  return true;
}

}  // namespace

bool FlowMatcherOptions::Check(std::string* error) const {
  std::ostringstream why;
  int unused;
  if (max_image_size < 16) why << "max_image_size must be >= 16; ";
  if (!PresetFromString(preset, &unused)) {
    why << "preset must be ultrafast, fast or medium (got '" << preset
        << "'); ";
  }
  if (grid_step < 1) why << "grid_step must be >= 1; ";
  if (!(fb_threshold > 0)) why << "fb_threshold must be > 0; ";
  if (!(min_score >= 0 && min_score <= 1)) {
    why << "min_score must be in [0, 1]; ";
  }
  const std::string message = why.str();
  if (error != nullptr) {
    *error = message.empty() ? "" : "FlowMatcherOptions: " + message;
  }
  return message.empty();
}

namespace {

constexpr int kMinWorkingSide = 16;

cv::Mat GreyAtSize(const MatcherImage& image, const cv::Size& size) {
  if (image.bgr.empty()) {
    throw std::invalid_argument("Flow matcher: image " +
                                std::to_string(image.image_id) + " (" +
                                image.path + ") is empty");
  }
  if (image.bgr.depth() != CV_8U) {
    throw std::invalid_argument("Flow matcher: image " + image.path +
                                " must be 8-bit");
  }
  cv::Mat grey;
  if (image.bgr.channels() == 3) {
    cv::cvtColor(image.bgr, grey, cv::COLOR_BGR2GRAY);
  } else if (image.bgr.channels() == 4) {
    cv::cvtColor(image.bgr, grey, cv::COLOR_BGRA2GRAY);
  } else {
    grey = image.bgr;
  }
  if (grey.size() == size) return grey;
  cv::Mat resized;
  // Area averaging when shrinking avoids aliasing; linear when enlarging.
  const bool shrinking = size.width <= grey.cols && size.height <= grey.rows;
  cv::resize(
      grey, resized, size, 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return resized;
}

// Bilinear sample of a 2-channel float image at (x, y), pixel centres at
// integers, clamped to the border.
cv::Vec2f SampleBilinear(const cv::Mat& flow, float x, float y) {
  x = std::min(std::max(x, 0.0f), static_cast<float>(flow.cols - 1));
  y = std::min(std::max(y, 0.0f), static_cast<float>(flow.rows - 1));
  // Top-left corner of the 2x2 cell; the last row/column reuse the one before.
  const int x0 = std::max(0, std::min(static_cast<int>(x), flow.cols - 2));
  const int y0 = std::max(0, std::min(static_cast<int>(y), flow.rows - 2));
  const int x1 = std::min(x0 + 1, flow.cols - 1);
  const int y1 = std::min(y0 + 1, flow.rows - 1);
  const float ax = x - x0;
  const float ay = y - y0;
  const cv::Vec2f& f00 = flow.at<cv::Vec2f>(y0, x0);
  const cv::Vec2f& f01 = flow.at<cv::Vec2f>(y0, x1);
  const cv::Vec2f& f10 = flow.at<cv::Vec2f>(y1, x0);
  const cv::Vec2f& f11 = flow.at<cv::Vec2f>(y1, x1);
  return (1 - ay) * ((1 - ax) * f00 + ax * f01) +
         ay * ((1 - ax) * f10 + ax * f11);
}

class FlowMatcher : public Matcher {
 public:
  explicit FlowMatcher(const FlowMatcherOptions& options) : options_(options) {
    std::string error;
    if (!options_.Check(&error)) throw std::invalid_argument(error);
    PresetFromString(options_.preset, &preset_);
  }

  std::string Name() const override { return "flow"; }
  bool IsDense() const override { return true; }

  PairMatches MatchDense(const MatcherImage& image1,
                         const MatcherImage& image2) override {
    if (image1.bgr.empty() || image2.bgr.empty()) {
      throw std::invalid_argument("Flow matcher: empty image in pair (" +
                                  image1.path + ", " + image2.path + ")");
    }
    const cv::Size size1 = image1.bgr.size();
    const cv::Size size2 = image2.bgr.size();
    const cv::Size work = WorkingSize(size1);
    if (work.width < kMinWorkingSide || work.height < kMinWorkingSide) {
      // DIS needs a few patches per side; say so instead of OpenCV's error.
      throw std::invalid_argument(
          "Flow matcher: working size " + std::to_string(work.width) + "x" +
          std::to_string(work.height) + " of pair (" + image1.path + ", " +
          image2.path + ") is below " + std::to_string(kMinWorkingSide) +
          " px on a side");
    }
    const cv::Mat grey1 = GreyAtSize(image1, work);
    const cv::Mat grey2 = GreyAtSize(image2, work);

    // A fresh instance per call keeps the matcher free of hidden state (the
    // DIS object caches buffers) and safe to use from one thread per pair.
    cv::Ptr<cv::DISOpticalFlow> dis = cv::DISOpticalFlow::create(preset_);
    cv::Mat flow12;
    cv::Mat flow21;
    dis->calc(grey1, grey2, flow12);
    dis->calc(grey2, grey1, flow21);

    // Per-axis factors from working COLMAP pixels to each original image's.
    const float sx1 = static_cast<float>(size1.width) / work.width;
    const float sy1 = static_cast<float>(size1.height) / work.height;
    const float sx2 = static_cast<float>(size2.width) / work.width;
    const float sy2 = static_cast<float>(size2.height) / work.height;
    const float sigma = static_cast<float>(options_.fb_threshold) / 2;
    const float inv_two_sigma2 = 1.0f / (2 * sigma * sigma);
    const float threshold = static_cast<float>(options_.fb_threshold);
    const float min_score = static_cast<float>(options_.min_score);

    PairMatches matches;
    const int step = options_.grid_step;
    // Centre the grid so the margins on both sides are equal.
    const int offset_x = ((work.width - 1) % step) / 2;
    const int offset_y = ((work.height - 1) % step) / 2;
    for (int y = offset_y; y < work.height; y += step) {
      for (int x = offset_x; x < work.width; x += step) {
        const cv::Vec2f forward = flow12.at<cv::Vec2f>(y, x);
        // Working-image coordinates, pixel centres at integers (OpenCV).
        const float x2 = x + forward[0];
        const float y2 = y + forward[1];
        // Inside image 2 means COLMAP coordinates in [0, W] x [0, H].
        if (x2 < -0.5f || y2 < -0.5f || x2 > work.width - 0.5f ||
            y2 > work.height - 0.5f) {
          continue;
        }
        const cv::Vec2f backward = SampleBilinear(flow21, x2, y2);
        const float ex = forward[0] + backward[0];
        const float ey = forward[1] + backward[1];
        const float e2 = ex * ex + ey * ey;
        if (!(e2 < threshold * threshold)) continue;  // Also drops NaN.
        const float score = std::exp(-e2 * inv_two_sigma2);
        if (score < min_score) continue;
        // +0.5: OpenCV centres -> COLMAP centres; then scale per axis.
        matches.Add((x + 0.5f) * sx1,
                    (y + 0.5f) * sy1,
                    (x2 + 0.5f) * sx2,
                    (y2 + 0.5f) * sy2,
                    score);
      }
    }
    Thin(&matches);
    return matches;
  }

 private:
  cv::Size WorkingSize(const cv::Size& size) const {
    const int longest = std::max(size.width, size.height);
    if (longest <= options_.max_image_size) return size;
    const double scale = static_cast<double>(options_.max_image_size) / longest;
    return cv::Size(
        std::max(1, static_cast<int>(std::lround(size.width * scale))),
        std::max(1, static_cast<int>(std::lround(size.height * scale))));
  }

  // Keeps max_num_matches evenly spread over the grid order (a best-score
  // cut would crowd them into the first rows, as most scores are near 1).
  void Thin(PairMatches* matches) const {
    const size_t n = matches->size();
    const int max_num = options_.max_num_matches;
    if (max_num <= 0 || n <= static_cast<size_t>(max_num)) return;
    PairMatches thinned;
    for (size_t k = 0; k < static_cast<size_t>(max_num); ++k) {
      const size_t i = k * n / max_num;
      thinned.Add(matches->xy1[2 * i],
                  matches->xy1[2 * i + 1],
                  matches->xy2[2 * i],
                  matches->xy2[2 * i + 1],
                  matches->scores[i]);
    }
    *matches = std::move(thinned);
  }

  const FlowMatcherOptions options_;
  int preset_ = cv::DISOpticalFlow::PRESET_MEDIUM;
};

}  // namespace

std::unique_ptr<Matcher> CreateFlowMatcher(const FlowMatcherOptions& options) {
  return std::make_unique<FlowMatcher>(options);
}

}  // namespace l2m
