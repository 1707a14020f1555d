#pragma once

#include <cstdint>
#include <utility>

namespace l2m {

// COLMAP's id types and pair-id rule (COLMAP 3.8 src/base/database.cc, same
// in 4.x): the pair is stored with the smaller image id first.
typedef uint32_t camera_t;
typedef uint32_t image_t;
typedef uint32_t point2D_t;
typedef uint64_t image_pair_t;

constexpr uint64_t kMaxNumImages = 2147483647;

inline bool ShouldSwapImagePair(image_t image_id1, image_t image_id2) {
  return image_id1 > image_id2;
}

inline image_pair_t ImagePairToPairId(image_t image_id1, image_t image_id2) {
  if (ShouldSwapImagePair(image_id1, image_id2)) {
    return kMaxNumImages * image_id2 + image_id1;
  }
  return kMaxNumImages * image_id1 + image_id2;
}

inline std::pair<image_t, image_t> PairIdToImagePair(image_pair_t pair_id) {
  const image_t image_id2 = static_cast<image_t>(pair_id % kMaxNumImages);
  const image_t image_id1 =
      static_cast<image_t>((pair_id - image_id2) / kMaxNumImages);
  return {image_id1, image_id2};
}

}  // namespace l2m
