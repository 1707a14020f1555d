#include "l2m_core/model/model_util.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace l2m {

AutocastOff::AutocastOff() : was_enabled_(at::autocast::is_enabled()) {
  at::autocast::set_enabled(false);
}

AutocastOff::~AutocastOff() { at::autocast::set_enabled(was_enabled_); }

at::Tensor IdentityGrid(int64_t h,
                        int64_t w,
                        const at::TensorOptions& options) {
  auto ys = torch::linspace(-1 + 1.0 / h, 1 - 1.0 / h, h, options);
  auto xs = torch::linspace(-1 + 1.0 / w, 1 - 1.0 / w, w, options);
  auto grid = torch::meshgrid({ys, xs}, "ij");
  return torch::stack({grid[1], grid[0]}).unsqueeze(0);
}

}  // namespace l2m
