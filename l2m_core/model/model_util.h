#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <map>
#include <memory>
#include <string>

namespace at {
struct RecordFunction;
}  // namespace at

namespace torch {
namespace nn {
class Module;
class Conv2dImpl;
class BatchNorm2dImpl;
}  // namespace nn
}  // namespace torch

// Small helpers shared by the model stages.

namespace l2m {

// Feature maps by scale (1, 2, 4, 8 from VGG; 16 from DINOv2),
// each (B, C, H/s, W/s).
using FeaturePyramid = std::map<int, at::Tensor>;

// Optional record of intermediate tensors under the fixture's names
// ("p1.s16.gp_posterior", ...), for parity tests and debugging. Modules take a
// nullable pointer.
struct ModelTrace {
  std::string prefix;
  std::map<std::string, at::Tensor> tensors;
  void Put(const std::string& name, const at::Tensor& t) {
    tensors[prefix + name] = t;
  }
};

inline void TracePut(ModelTrace* trace,
                     const std::string& name,
                     const at::Tensor& t) {
  if (trace != nullptr) trace->Put(name, t);
}

// Wall time per model stage, for `l2m bench`'s breakdown. While a profiler
// is active on this thread, each ScopedStage synchronises the device at its
// ends (so stages add up to the total, at some cost to overlap); otherwise a
// ScopedStage costs one thread-local read. While LibTorch's own (Kineto)
// profiler records, each ScopedStage is also a named user scope there, so a
// kernel trace attributes GPU time to stages without any synchronisation.
class StageProfiler {
 public:
  explicit StageProfiler(bool synchronize_cuda);
  ~StageProfiler();  // Deactivates.
  StageProfiler(const StageProfiler&) = delete;
  StageProfiler& operator=(const StageProfiler&) = delete;

  // Milliseconds by stage name, summed over calls.
  const std::map<std::string, double>& milliseconds() const { return ms_; }
  static StageProfiler* Active();

 private:
  friend class ScopedStage;
  bool synchronize_cuda_;
  StageProfiler* previous_;
  std::map<std::string, double> ms_;
};

class ScopedStage {
 public:
  explicit ScopedStage(const char* name);
  ScopedStage(const std::string& name);
  ~ScopedStage();
  ScopedStage(const ScopedStage&) = delete;
  ScopedStage& operator=(const ScopedStage&) = delete;

 private:
  StageProfiler* profiler_;
  std::string name_;
  double start_ms_ = 0;
  std::unique_ptr<at::RecordFunction> record_;
};

// Folds an inference-mode BatchNorm that follows `conv` into the conv's
// weight and bias (w' = w·g/sqrt(v+eps), b' = (b−m)·g/sqrt(v+eps) + beta), so
// the BN pass over the activations can be skipped. In float64, so the folded
// fp32 weights stay within rounding of the two-step result.
void FoldBatchNormIntoConv(torch::nn::Conv2dImpl& conv,
                           const torch::nn::BatchNorm2dImpl& bn);

// Stores every 4-D parameter of `module` channels-last (NHWC), the layout
// cuDNN's fast fp16/bf16 convolutions (depthwise ones above all) want.
void ConvertConvWeightsToChannelsLast(torch::nn::Module& module);

// Turns CUDA autocast on (fp16/bf16) or off for what follows, across
// LibTorch versions (and clears its cache of low-precision weights).
void SetCudaAutocastDtype(bool enabled, at::ScalarType dtype);

// The dtype CUDA ops run in here: autocast's low-precision dtype while CUDA
// autocast is on, otherwise `if_off`.
at::ScalarType CudaComputeDtype(at::ScalarType if_off);

// CUDA autocast in `dtype` (fp16/bf16) inside a scope, off again (and its
// cache of low-precision weights dropped) at the end, also on exceptions;
// float32 leaves autocast off.
class CudaAutocast {
 public:
  explicit CudaAutocast(at::ScalarType dtype);
  ~CudaAutocast();
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool on_;
};

// Turns CUDA autocast off inside a scope: the GP and the refiners' out_conv run
// in fp32, as in the reference.
class AutocastOff {
 public:
  AutocastOff();
  ~AutocastOff();
  AutocastOff(const AutocastOff&) = delete;
  AutocastOff& operator=(const AutocastOff&) = delete;

 private:
  bool was_enabled_;
};

// Pixel-centre grid of an (h, w) map in normalised coords
// (align_corners=False), as (1, 2, h, w) with channel 0 = x, 1 = y. Built with
// linspace like the reference.
at::Tensor IdentityGrid(int64_t h, int64_t w, const at::TensorOptions& options);

// One axis of IdentityGrid: the n pixel centres in [−1, 1] (linspace).
at::Tensor IdentityAxis(int64_t n, const at::TensorOptions& options);

}  // namespace l2m
