#pragma once

#include "l2m_core/train/pair_source.h"

#include <cstdint>

// Exact synthetic pairs without any photo or renderer: a textured, slanted
// plane seen by two pinhole cameras. Both images are evaluated from the same
// procedural texture on the plane, so the GT warp (GetGtWarp of the depths
// and poses) is exact. Used by the trainer's tests (overfitting, resume)
// and as a smoke-test data source (`--Train.data planar`).

namespace l2m {

struct PlanarPairOptions {
  int height = 64;
  int width = 64;
  int64_t num_pairs = 1000;
  uint64_t seed = 0;
  double max_rotation_deg = 6;
  double max_translation = 0.3;  // plane distance is 2–4

  void Check() const;  // std::invalid_argument naming the option
};

class PlanarPairSource : public PairSource {
 public:
  explicit PlanarPairSource(const PlanarPairOptions& options);
  int64_t Size() const override { return options_.num_pairs; }
  TrainingPair Get(int64_t index) const override;

 private:
  PlanarPairOptions options_;
};

}  // namespace l2m
