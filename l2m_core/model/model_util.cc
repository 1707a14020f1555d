#include "l2m_core/model/model_util.h"

#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>

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

thread_local StageProfiler* active_profiler = nullptr;

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StageProfiler::StageProfiler(bool synchronize_cuda)
    : synchronize_cuda_(synchronize_cuda), previous_(active_profiler) {
  active_profiler = this;
}

StageProfiler::~StageProfiler() { active_profiler = previous_; }

StageProfiler* StageProfiler::Active() { return active_profiler; }

ScopedStage::ScopedStage(const char* name) : ScopedStage(std::string(name)) {}

ScopedStage::ScopedStage(const std::string& name) : profiler_(active_profiler) {
  if (at::hasCallbacks()) {
    record_ = std::make_unique<at::RecordFunction>(at::RecordScope::USER_SCOPE);
    if (record_->isActive()) record_->before(name);
  }
  if (profiler_ == nullptr) return;
  name_ = name;
  if (profiler_->synchronize_cuda_) torch::cuda::synchronize();
  start_ms_ = NowMs();
}

ScopedStage::~ScopedStage() {
  record_.reset();  // Ends the user scope.
  if (profiler_ == nullptr) return;
  if (profiler_->synchronize_cuda_) torch::cuda::synchronize();
  profiler_->ms_[name_] += NowMs() - start_ms_;
}

void FoldBatchNormIntoConv(torch::nn::Conv2dImpl& conv,
                           const torch::nn::BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  const auto dtype = conv.weight.scalar_type();
  const at::Tensor scale =
      bn.weight.to(torch::kFloat64) /
      (bn.running_var.to(torch::kFloat64) + bn.options.eps()).sqrt();
  const at::Tensor bias = conv.bias.defined() ? conv.bias.to(torch::kFloat64)
                                              : torch::zeros_like(scale);
  const at::Tensor w =
      conv.weight.to(torch::kFloat64) * scale.view({-1, 1, 1, 1});
  const at::Tensor b = (bias - bn.running_mean.to(torch::kFloat64)) * scale +
                       bn.bias.to(torch::kFloat64);
  conv.weight.set_data(w.to(dtype));
  if (conv.bias.defined()) {
    conv.bias.set_data(b.to(dtype));
  } else {
    conv.bias = conv.register_parameter("bias", b.to(dtype));
  }
}

void ConvertConvWeightsToChannelsLast(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) {
      p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
}

at::ScalarType CudaComputeDtype(at::ScalarType if_off) {
  if (!CudaAutocastEnabled()) return if_off;
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

CudaAutocast::CudaAutocast(at::ScalarType dtype)
    : on_(dtype == at::kHalf || dtype == at::kBFloat16) {
  if (on_) SetCudaAutocastDtype(true, dtype);
}

CudaAutocast::~CudaAutocast() {
  if (on_) SetCudaAutocastDtype(false, at::kHalf);
}

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

at::Tensor IdentityAxis(int64_t n, const at::TensorOptions& options) {
  return torch::linspace(-1 + 1.0 / n, 1 - 1.0 / n, n, options);
}

at::Tensor IdentityGrid(int64_t h,
                        int64_t w,
                        const at::TensorOptions& options) {
  auto ys = IdentityAxis(h, options);
  auto xs = IdentityAxis(w, options);
  auto grid = torch::meshgrid({ys, xs}, "ij");
  return torch::stack({grid[1], grid[0]}).unsqueeze(0);
}

}  // namespace l2m
