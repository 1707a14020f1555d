#pragma once

#include <cstdint>
#include <string>

// Learning-rate multiplier per optimiser step: linear warm-up, then the
// decay of RoMa (step: ×0.1 at 90 % of the run) or GIM (linear to a floor).
// A pure function of the step, so a resumed run needs no scheduler state.

namespace l2m {

struct LrScheduleOptions {
  // "linear" (GIM-RoMa), "step" (RoMa's MultiStepLR ×0.1 at 90 %),
  // "cosine", or "constant" (after warm-up).
  std::string kind = "linear";
  int64_t total_steps = 1000;
  int64_t warmup_steps = 0;
  double warmup_start = 0.1;  // multiplier at step 0 (GIM: 0.1)
  double min_ratio = 0.1;     // floor of "linear" and "cosine"

  void Check() const;  // std::invalid_argument naming the option
};

// Multiplier of the base learning rate for the update at `step` (0-based).
double LrMultiplier(const LrScheduleOptions& options, int64_t step);

}  // namespace l2m
