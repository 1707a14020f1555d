#include "l2m_core/model/model_util.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace l2m {
namespace {

// LibTorch 2.4 replaced the CUDA-only autocast switches with per-device ones
// (Debian ships 1.13; the GPU machine 2.x).
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool CudaAutocastEnabled() {
  return at::autocast::is_autocast_enabled(at::kCUDA);
}
void SetCudaAutocast(bool on) {
  at::autocast::set_autocast_enabled(at::kCUDA, on);
}
#else
bool CudaAutocastEnabled() { return at::autocast::is_enabled(); }
void SetCudaAutocast(bool on) { at::autocast::set_enabled(on); }
#endif

}  // namespace

AutocastOff::AutocastOff() : was_enabled_(CudaAutocastEnabled()) {
  SetCudaAutocast(false);
}

AutocastOff::~AutocastOff() { SetCudaAutocast(was_enabled_); }

void SetCudaAutocastDtype(bool enabled, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
  SetCudaAutocast(enabled);
  // Autocast caches the low-precision copies of the weights; a switch of
  // dtype must not reuse them.
  at::autocast::clear_cache();
}

at::Tensor IdentityGrid(int64_t h,
                        int64_t w,
                        const at::TensorOptions& options) {
  auto ys = torch::linspace(-1 + 1.0 / h, 1 - 1.0 / h, h, options);
  auto xs = torch::linspace(-1 + 1.0 / w, 1 - 1.0 / w, w, options);
  auto grid = torch::meshgrid({ys, xs}, "ij");
  return torch::stack({grid[1], grid[0]}).unsqueeze(0);
}

}  // namespace l2m
