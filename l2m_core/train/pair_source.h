#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

// Where training pairs come from: the trainer sees only this interface, so
// pairs generated on the fly from photos (synth/train_pairs.h), pairs read
// from synth shards and the tiny pairs of the tests are interchangeable.

namespace l2m {

// One training sample in RoMa's MegaDepth batch layout (CPU tensors,
// float32): image A is the query side, the GT warp is defined on its grid.
struct TrainingPair {
  at::Tensor image_a;         // (3, H, W) RGB in [0, 1]
  at::Tensor image_b;         // (3, H, W)
  at::Tensor depth_a;         // (H, W) camera z, 0 = unknown
  at::Tensor depth_b;         // (H, W)
  at::Tensor calibration_a;   // (3, 3) K of A at (H, W), COLMAP pixels
  at::Tensor calibration_b;   // (3, 3)
  at::Tensor cam2_from_cam1;  // (4, 4) X_B = R X_A + t
  std::string name;           // for logs and error messages
};

class PairSource {
 public:
  virtual ~PairSource() = default;
  // Number of distinct pairs (an epoch); the trainer wraps around.
  virtual int64_t Size() const = 0;
  // Deterministic in `index` (same index, same pair, on any thread and in
  // any order), so a resumed run sees exactly the data it would have seen.
  // Must be safe to call from several threads at once.
  virtual TrainingPair Get(int64_t index) const = 0;
};

}  // namespace l2m
