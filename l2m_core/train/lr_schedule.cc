#include "l2m_core/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace l2m {

void LrScheduleOptions::Check() const {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("Train." + what);
  };
  if (kind != "linear" && kind != "step" && kind != "cosine" &&
      kind != "constant") {
    fail("schedule must be linear, step, cosine or constant, not '" + kind +
         "'");
  }
  if (total_steps < 1) fail("num_steps must be >= 1");
  if (warmup_steps < 0) fail("warmup_steps must be >= 0");
  if (!(warmup_start >= 0 && warmup_start <= 1))
    fail("warmup_start must be in [0, 1]");
  if (!(min_ratio >= 0 && min_ratio <= 1))
    fail("min_lr_ratio must be in [0, 1]");
}

double LrMultiplier(const LrScheduleOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    const double t = static_cast<double>(step) / o.warmup_steps;
    return o.warmup_start + (1 - o.warmup_start) * t;
  }
  if (o.kind == "constant") return 1;
  if (o.kind == "step") return step >= 0.9 * o.total_steps ? 0.1 : 1.0;
  const int64_t span = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  const double t =
      std::clamp(static_cast<double>(step - o.warmup_steps) / span, 0.0, 1.0);
  if (o.kind == "cosine") {
    return o.min_ratio + (1 - o.min_ratio) * 0.5 * (1 + std::cos(M_PI * t));
  }
  return 1 - (1 - o.min_ratio) * t;  // linear
}

}  // namespace l2m
