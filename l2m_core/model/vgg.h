#pragma once

#include "l2m_core/model/config.h"
#include "l2m_core/model/model_util.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <utility>
#include <vector>

// VGG19-BN features[:40] (torchvision layout) as a ModuleList named `layers`,
// so the keys are layers.{0,3,7,...}.{weight,bias} (convs) and
// layers.{1,4,...}.* (BatchNorms).

namespace l2m {

class Vgg19Impl : public torch::nn::Module {
 public:
  explicit Vgg19Impl(const VggConfig& config);

  // The activation entering each MaxPool:
  // {1: (B,C1,H,W), 2: (B,C2,H/2,W/2), 4: ..., 8: ...}, plus the last
  // activation when convs follow the last pool (16 for l2m_s).
  FeaturePyramid forward(const torch::Tensor& x);

  // Inference only, after the weights are loaded: folds each BatchNorm into
  // the conv before it and skips it from then on.
  void FoldBatchNorm();

 private:
  torch::nn::ModuleList layers_{nullptr};
  std::vector<bool> is_pool_;
  bool bn_folded_ = false;
  // Conv weights and biases in the low-precision compute dtype for cuDNN's
  // fused conv+bias+ReLU (CUDA inference), cast once per dtype.
  std::map<size_t, std::pair<torch::Tensor, torch::Tensor>> low_precision_;
};
TORCH_MODULE(Vgg19);

}  // namespace l2m
