#pragma once

#include "l2m_core/model/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

// RoMa's coarse match classifier ("embedding_decoder"): tokens =
// cat(gp_posterior, proj16(f_A)) per cell, no positional encoding, `blocks`
// (pre-norm ViT blocks without qkv bias), then `to_out` → cls_res² anchor
// logits + 1 certainty logit.

namespace l2m {

struct CoarseMatch {
  torch::Tensor cls;        // (B, cls_res², h, w) anchor logits
  torch::Tensor certainty;  // (B, 1, h, w) certainty logit
};

class TransformerDecoderImpl : public torch::nn::Module {
 public:
  explicit TransformerDecoderImpl(const TransformerDecoderConfig& config);

  CoarseMatch forward(const torch::Tensor& gp_posterior,
                      const torch::Tensor& features);

 private:
  // to_out with its output rows padded to a multiple of 8 on CUDA inference:
  // RoMa's cls_res² + 1 = 4097 outputs leave the GEMM's rows unaligned, and
  // cuBLAS then falls back to a slow kernel (2.7 ms against ~0.5 ms at 16
  // images on an H200). Zero rows, sliced off: the result is unchanged.
  torch::Tensor ToOut(const torch::Tensor& tokens);

  TransformerDecoderConfig config_;
  torch::nn::Sequential blocks_{nullptr};
  torch::nn::Linear to_out_{nullptr};
  // The padded copy of to_out's weight and bias, and which weight it is of
  // (storage and version: reloading the weights changes either).
  torch::Tensor padded_weight_, padded_bias_;
  const void* padded_of_ = nullptr;
  int64_t padded_version_ = -1;
};
TORCH_MODULE(TransformerDecoder);

// Anchor logits (B, R², h, w) → flow (B, 2, h, w): softmax, argmax anchor and
// its neighbours (k−1, k, k+1, k−R, k+R, indices clamped to [0, R²−1], no row
// wrap), probability-weighted mean of the anchor positions. Anchor k = row·R +
// col sits at (lin[col], lin[row]), lin = linspace(−1+1/R, 1−1/R, R).
// Float32 flow from logits of any floating dtype (as if they were widened
// first: the same values).
torch::Tensor ClsToFlowRefine(const torch::Tensor& cls);

}  // namespace l2m
