#pragma once

// One small interface for every matcher the backend can drive.
//
// Coordinates everywhere in this interface are COLMAP pixels of the ORIGINAL
// image: origin at the top-left corner, top-left pixel centre at (0.5, 0.5).
// A matcher that works on a resized copy scales its results back.

#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace l2m {

// An image as the matcher sees it: id (stable for caching), file path, pixels.
struct MatcherImage {
  int64_t image_id = -1;
  std::string path;
  cv::Mat bgr;  // 8-bit, 3 channels, original resolution.
};

struct Keypoint {
  float x = 0;  // COLMAP pixels.
  float y = 0;
  float scale = 1;
  float orientation = 0;
};

// Per-image features of a sparse matcher (what COLMAP stores per image).
struct ImageFeatures {
  std::vector<Keypoint> keypoints;
  // Row-major num_keypoints x dim; COLMAP-style uint8 for SIFT.
  std::vector<uint8_t> descriptors;
  int descriptor_dim = 0;
};

// The matches of one image pair.
//   Sparse matchers fill idx1/idx2 (indices into each image's ImageFeatures)
//   and also the positions; dense matchers fill positions only.
struct PairMatches {
  std::vector<float> xy1;      // 2N: x, y in image 1 (COLMAP pixels).
  std::vector<float> xy2;      // 2N: x, y in image 2.
  std::vector<float> scores;   // N: in [0, 1], higher is better.
  std::vector<uint32_t> idx1;  // N or empty (dense).
  std::vector<uint32_t> idx2;

  size_t size() const { return scores.size(); }
  void Add(float x1, float y1, float x2, float y2, float score) {
    xy1.push_back(x1);
    xy1.push_back(y1);
    xy2.push_back(x2);
    xy2.push_back(y2);
    scores.push_back(score);
  }
};

class Matcher {
 public:
  virtual ~Matcher() = default;

  virtual std::string Name() const = 0;

  // Sparse matchers give per-image keypoints whose identities are shared by
  // all pairs of the image (native tracks); dense matchers give per-pair
  // positions that the track builder merges into per-image keypoints.
  virtual bool IsDense() const = 0;

  // Sparse matchers: features of one image. Dense matchers: not called.
  virtual ImageFeatures Extract(const MatcherImage& image) {
    (void)image;
    return {};
  }

  // Sparse matchers: match two images' features (fills idx1/idx2 and the
  // positions). Dense matchers: not called.
  virtual PairMatches MatchFeatures(const ImageFeatures& features1,
                                    const ImageFeatures& features2) {
    (void)features1;
    (void)features2;
    return {};
  }

  // Dense matchers: match the pixels of two images (positions + scores).
  virtual PairMatches MatchDense(const MatcherImage& image1,
                                 const MatcherImage& image2) {
    (void)image1;
    (void)image2;
    return {};
  }
};

}  // namespace l2m
