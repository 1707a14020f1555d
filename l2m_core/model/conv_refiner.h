#pragma once

#include "l2m_core/model/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

// RoMa's ConvRefiner for one scale: input cat(f_A, f_B(warp),
// disp_emb(displacement), local_corr), then `block1` and `hidden_blocks`
// ([depthwise k×k conv, BN, ReLU, 1×1 conv] each) and `out_conv` (fp32) → 2
// displacement channels + 1 certainty logit.

namespace l2m {

struct Refinement {
  torch::Tensor delta_flow;       // (B, 2, h, w), raw (the decoder scales it)
  torch::Tensor delta_certainty;  // (B, 1, h, w)
};

class ConvRefinerImpl : public torch::nn::Module {
 public:
  explicit ConvRefinerImpl(const ConvRefinerConfig& config);

  // x: projected query features (B, C, h, w);
  // y: projected support features (B, C, h', w');
  // flow: current warp (B, 2, h, w) in normalised coords;
  // scale_factor scales the displacement embedding:
  //   disp_emb(40/32 · scale_factor · (flow − grid)).
  Refinement forward(const torch::Tensor& x,
                     const torch::Tensor& y,
                     const torch::Tensor& flow,
                     double scale_factor);

  // Inference only, after loading: folds each block's BatchNorm into its
  // depthwise conv and skips it from then on.
  void FoldBatchNorm();

 private:
  torch::Tensor RunBlock(torch::nn::Sequential& block,
                         const torch::Tensor& x) const;

  ConvRefinerConfig config_;
  bool bn_folded_ = false;
  torch::nn::Sequential block1_{nullptr};
  torch::nn::ModuleList hidden_blocks_{nullptr};  // of Sequential blocks
  torch::nn::Conv2d out_conv_{nullptr};
  torch::nn::Conv2d disp_emb_{nullptr};
};
TORCH_MODULE(ConvRefiner);

}  // namespace l2m
