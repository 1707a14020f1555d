#include "matcher_adapters/sift_matcher.h"

#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace l2m {

bool SiftMatcherOptions::Check(std::string* error) const {
  std::ostringstream why;
  if (max_image_size < 16) why << "max_image_size must be >= 16; ";
  if (max_num_features <= 0) why << "max_num_features must be > 0; ";
  if (!(contrast_threshold > 0)) why << "contrast_threshold must be > 0; ";
  if (!(edge_threshold > 0)) why << "edge_threshold must be > 0; ";
  if (!(max_ratio > 0 && max_ratio <= 1))
    why << "max_ratio must be in (0, 1]; ";
  if (!(max_distance > 0)) why << "max_distance must be > 0; ";
  const std::string message = why.str();
  if (error != nullptr) {
    *error = message.empty() ? "" : "SiftMatcherOptions: " + message;
  }
  return message.empty();
}

namespace {

constexpr int kDescriptorDim = 128;
// OpenCV SIFT doubles the image for its first octave with a half-pixel-centre
// resize but maps keypoints back by halving, so before OpenCV 4.8
// (enable_precise_upscale) every keypoint is off by +0.25 px on both axes
// (measured here: 0.5 px residual under a 90-degree rotation without this).
#if CV_VERSION_MAJOR > 4 || (CV_VERSION_MAJOR == 4 && CV_VERSION_MINOR >= 8)
#define L2M_SIFT_PRECISE_UPSCALE 1
constexpr float kUpscaleBias = 0.0f;
#else
#define L2M_SIFT_PRECISE_UPSCALE 0
constexpr float kUpscaleBias = 0.25f;
#endif

// COLMAP stores unit-normalised descriptors as uint8 after scaling by 512.
constexpr float kDescriptorScale = 512.0f;

cv::Mat ToGrey(const cv::Mat& image) {
  cv::Mat grey;
  if (image.channels() == 3) {
    cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
  } else if (image.channels() == 4) {
    cv::cvtColor(image, grey, cv::COLOR_BGRA2GRAY);
  } else {
    grey = image;
  }
  if (grey.depth() != CV_8U) {
    throw std::invalid_argument("SIFT matcher: image must be 8-bit");
  }
  return grey;
}

// Normalises one descriptor row (L2, or RootSIFT) and quantises it like COLMAP.
void QuantiseDescriptor(const float* in, bool root_sift, uint8_t* out) {
  float normalised[kDescriptorDim];
  if (root_sift) {
    float l1 = 0;
    for (int i = 0; i < kDescriptorDim; ++i) l1 += std::abs(in[i]);
    const float inv = l1 > 0 ? 1.0f / l1 : 0.0f;
    for (int i = 0; i < kDescriptorDim; ++i) {
      normalised[i] = std::sqrt(std::abs(in[i]) * inv);
    }
  } else {
    float l2 = 0;
    for (int i = 0; i < kDescriptorDim; ++i) l2 += in[i] * in[i];
    const float inv = l2 > 0 ? 1.0f / std::sqrt(l2) : 0.0f;
    for (int i = 0; i < kDescriptorDim; ++i) normalised[i] = in[i] * inv;
  }
  for (int i = 0; i < kDescriptorDim; ++i) {
    const float v = std::round(kDescriptorScale * normalised[i]);
    out[i] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)));
  }
}

cv::Mat DescriptorsAsFloat(const ImageFeatures& features) {
  const int n = static_cast<int>(features.keypoints.size());
  if (features.descriptor_dim != kDescriptorDim ||
      features.descriptors.size() != static_cast<size_t>(n) * kDescriptorDim) {
    throw std::invalid_argument("SIFT matcher: features need " +
                                std::to_string(kDescriptorDim) +
                                "-d descriptors, one row per keypoint");
  }
  cv::Mat bytes(n,
                kDescriptorDim,
                CV_8U,
                const_cast<uint8_t*>(features.descriptors.data()));
  cv::Mat floats;
  bytes.convertTo(floats, CV_32F);
  return floats;
}

// Nearest neighbours both ways from one pass over the distance matrix.
// Squared distances are |a|^2 + |b|^2 - 2 a.b with the dot products from a
// float GEMM (BLAS). The descriptors are integers <= 255 in 128 dims, so every
// product and partial sum is an integer below 2^24 and exact in float: the
// result is exact and independent of the summation order and thread count.
// Ties go to the lower index.
struct NearestNeighbours {
  std::vector<int> best12;  // Per row of image 1.
  std::vector<float> best12_squared;
  std::vector<float> second12_squared;  // Infinity with a single candidate.
  std::vector<int> best21;              // Per row of image 2.
};

NearestNeighbours FindNearestNeighbours(const cv::Mat& descriptors1,
                                        const cv::Mat& descriptors2) {
  const int n1 = descriptors1.rows;
  const int n2 = descriptors2.rows;
  const float inf = std::numeric_limits<float>::infinity();
  NearestNeighbours nn;
  nn.best12.assign(n1, -1);
  nn.best12_squared.assign(n1, inf);
  nn.second12_squared.assign(n1, inf);
  nn.best21.assign(n2, -1);
  std::vector<float> best21_squared(n2, inf);

  std::vector<float> norms2(n2);
  for (int j = 0; j < n2; ++j) {
    norms2[j] =
        static_cast<float>(descriptors2.row(j).dot(descriptors2.row(j)));
  }
  // Blocks of rows bound the memory (kBlock x n2 floats).
  constexpr int kBlock = 512;
  cv::Mat dots;
  for (int r0 = 0; r0 < n1; r0 += kBlock) {
    const int r1 = std::min(n1, r0 + kBlock);
    cv::gemm(descriptors1.rowRange(r0, r1),
             descriptors2,
             1.0,
             cv::noArray(),
             0.0,
             dots,
             cv::GEMM_2_T);
    for (int i = r0; i < r1; ++i) {
      const float norm1 =
          static_cast<float>(descriptors1.row(i).dot(descriptors1.row(i)));
      const float* dot = dots.ptr<float>(i - r0);
      float best = inf;
      float second = inf;
      int best_j = -1;
      for (int j = 0; j < n2; ++j) {
        const float d2 = std::max(0.0f, norm1 + norms2[j] - 2 * dot[j]);
        if (d2 < best) {
          second = best;
          best = d2;
          best_j = j;
        } else if (d2 < second) {
          second = d2;
        }
        if (d2 < best21_squared[j]) {
          best21_squared[j] = d2;
          nn.best21[j] = i;
        }
      }
      nn.best12[i] = best_j;
      nn.best12_squared[i] = best;
      nn.second12_squared[i] = second;
    }
  }
  return nn;
}

class SiftMatcher : public Matcher {
 public:
  explicit SiftMatcher(const SiftMatcherOptions& options) : options_(options) {
    std::string error;
    if (!options_.Check(&error)) throw std::invalid_argument(error);
  }

  std::string Name() const override { return "sift"; }
  bool IsDense() const override { return false; }

  ImageFeatures Extract(const MatcherImage& image) override {
    if (image.bgr.empty()) {
      throw std::invalid_argument("SIFT matcher: image " +
                                  std::to_string(image.image_id) + " (" +
                                  image.path + ") is empty");
    }
    cv::Mat grey = ToGrey(image.bgr);
    const int width = grey.cols;
    const int height = grey.rows;
    const int longest = std::max(width, height);
    if (longest > options_.max_image_size) {
      const double scale =
          static_cast<double>(options_.max_image_size) / longest;
      const cv::Size size(
          std::max(1, static_cast<int>(std::lround(width * scale))),
          std::max(1, static_cast<int>(std::lround(height * scale))));
      cv::Mat small;
      cv::resize(grey, small, size, 0, 0, cv::INTER_AREA);
      grey = small;
    }
    // Per-axis factors: the rounded size makes them differ slightly.
    const float scale_x = static_cast<float>(width) / grey.cols;
    const float scale_y = static_cast<float>(height) / grey.rows;

    // OpenCV keeps the max_num_features strongest (plus ties at the cut: a
    // deterministic set), but lists them in an order that depends on
    // threading; sort into a total order (strongest first) for stable ids.
    std::vector<cv::KeyPoint> detected;
    cv::Mat detected_descriptors;
    CreateSift()->detectAndCompute(
        grey, cv::noArray(), detected, detected_descriptors);
    std::vector<int> order(detected.size());
    std::iota(order.begin(), order.end(), 0);
    const auto key = [&detected](int i) {
      const cv::KeyPoint& kp = detected[i];
      return std::make_tuple(
          -kp.response, kp.pt.y, kp.pt.x, kp.size, kp.angle, kp.octave);
    };
    std::sort(order.begin(), order.end(), [&key](int a, int b) {
      return key(a) < key(b);
    });
    if (order.size() > static_cast<size_t>(options_.max_num_features)) {
      order.resize(options_.max_num_features);
    }

    ImageFeatures features;
    features.descriptor_dim = kDescriptorDim;
    features.keypoints.resize(order.size());
    features.descriptors.resize(order.size() * kDescriptorDim);
    const float scale_mean = 0.5f * (scale_x + scale_y);
    for (size_t i = 0; i < order.size(); ++i) {
      const cv::KeyPoint& kp = detected[order[i]];
      Keypoint& out = features.keypoints[i];
      // OpenCV puts pixel centres at integers, COLMAP at +0.5; then scale the
      // continuous (corner-origin) coordinates back to the original image.
      out.x = (kp.pt.x + 0.5f - kUpscaleBias) * scale_x;
      out.y = (kp.pt.y + 0.5f - kUpscaleBias) * scale_y;
      // KeyPoint::size is the diameter, 2 sigma.
      out.scale = 0.5f * kp.size * scale_mean;
      float angle = kp.angle * static_cast<float>(CV_PI / 180.0);
      if (angle > CV_PI) angle -= static_cast<float>(2 * CV_PI);
      out.orientation = angle;
      QuantiseDescriptor(detected_descriptors.ptr<float>(order[i]),
                         options_.root_sift,
                         &features.descriptors[i * kDescriptorDim]);
    }
    return features;
  }

  PairMatches MatchFeatures(const ImageFeatures& features1,
                            const ImageFeatures& features2) override {
    PairMatches matches;
    if (features1.keypoints.empty() || features2.keypoints.empty()) {
      return matches;
    }
    const cv::Mat descriptors1 = DescriptorsAsFloat(features1);
    const cv::Mat descriptors2 = DescriptorsAsFloat(features2);

    const NearestNeighbours nn =
        FindNearestNeighbours(descriptors1, descriptors2);

    const float max_distance =
        static_cast<float>(options_.max_distance) * kDescriptorScale;
    // Unit vectors with non-negative entries are at most sqrt(2) apart: the
    // second-best distance when image 2 has a single keypoint.
    const float no_second = std::sqrt(2.0f) * kDescriptorScale;
    for (int i1 = 0; i1 < descriptors1.rows; ++i1) {
      const int i2 = nn.best12[i1];
      const float best = std::sqrt(nn.best12_squared[i1]);
      if (best > max_distance) continue;
      const float second =
          nn.second12_squared[i1] < std::numeric_limits<float>::infinity()
              ? std::sqrt(nn.second12_squared[i1])
              : no_second;
      // Equal distances (duplicated descriptors) are ambiguous: ratio 1.
      const float ratio = second > 0 ? best / second : 1.0f;
      if (ratio >= options_.max_ratio) continue;
      if (options_.cross_check && nn.best21[i2] != i1) continue;
      const Keypoint& kp1 = features1.keypoints[i1];
      const Keypoint& kp2 = features2.keypoints[i2];
      matches.Add(kp1.x,
                  kp1.y,
                  kp2.x,
                  kp2.y,
                  std::min(1.0f, std::max(0.0f, 1.0f - ratio)));
      matches.idx1.push_back(static_cast<uint32_t>(i1));
      matches.idx2.push_back(static_cast<uint32_t>(i2));
    }
    return matches;
  }

 private:
  // One detector per call (cheap to create): no state shared between threads.
  cv::Ptr<cv::SIFT> CreateSift() const {
#if L2M_SIFT_PRECISE_UPSCALE
    return cv::SIFT::create(options_.max_num_features,
                            /*nOctaveLayers=*/3,
                            options_.contrast_threshold,
                            options_.edge_threshold,
                            /*sigma=*/1.6,
                            /*descriptorType=*/CV_32F,
                            /*enable_precise_upscale=*/true);
#else
    return cv::SIFT::create(options_.max_num_features,
                            /*nOctaveLayers=*/3,
                            options_.contrast_threshold,
                            options_.edge_threshold);
#endif
  }

  const SiftMatcherOptions options_;
};

}  // namespace

std::unique_ptr<Matcher> CreateSiftMatcher(const SiftMatcherOptions& options) {
  return std::make_unique<SiftMatcher>(options);
}

}  // namespace l2m
