#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <map>
#include <string>

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

// Turns CUDA autocast off inside a scope: the GP and the refiners' out_conv run
// in fp32, as in the reference.
// Turns CUDA autocast on (fp16/bf16) or off for what follows, across
// LibTorch versions.
void SetCudaAutocastDtype(bool enabled, at::ScalarType dtype);

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

}  // namespace l2m
