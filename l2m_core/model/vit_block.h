#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

// Pre-norm transformer block of DINOv2 (layers/block.py), shared by the DINOv2
// encoder and RoMa's transformer decoder:
//   x += ls1(attn(norm1(x)));  x += ls2(mlp(norm2(x))).

namespace l2m {

struct VitBlockOptions {
  int dim = 0;
  int num_heads = 0;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  bool proj_bias = true;
  bool ffn_bias = true;
  double layernorm_eps = 1e-6;
  double init_values =
      0.0;  // > 0: LayerScale ls1/ls2 (DINOv2); otherwise none.
};

// Multi-head self-attention, plain softmax(q·scale·kᵀ)·v (MemEffAttention
// without xformers).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int dim, int num_heads, bool qkv_bias, bool proj_bias);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int num_heads_;
  double scale_;
  torch::nn::Linear qkv_{nullptr};
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(Attention);

// fc1 → GELU (exact) → fc2.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int dim, int hidden, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear fc1_{nullptr};
  torch::nn::Linear fc2_{nullptr};
};
TORCH_MODULE(Mlp);

// Per-channel scale `gamma`.
class LayerScaleImpl : public torch::nn::Module {
 public:
  LayerScaleImpl(int dim, double init_values);
  torch::Tensor forward(const torch::Tensor& x) { return x * gamma_; }

 private:
  torch::Tensor gamma_;
};
TORCH_MODULE(LayerScale);

class VitBlockImpl : public torch::nn::Module {
 public:
  explicit VitBlockImpl(const VitBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

  // Inference on CUDA in fp16/bf16 with each LayerNorm fused into the
  // residual add before it (one pass instead of addcmul + LayerNorm, which
  // reads the sum again): x in `dtype` and h = norm1(x) from the step
  // before; returns x after the block and next(x), `next_*` being the next
  // block's norm1 or the encoder's final norm in `dtype` (undefined after
  // the last block without a final norm: then next(x) is undefined too).
  std::pair<torch::Tensor, torch::Tensor> ForwardFused(
      const torch::Tensor& x,
      const torch::Tensor& h,
      const torch::Tensor& next_weight,
      const torch::Tensor& next_bias,
      double next_eps,
      at::ScalarType dtype);
  // norm1's weight and bias in `dtype` (for the step before this block).
  std::pair<torch::Tensor, torch::Tensor> Norm1(at::ScalarType dtype);
  // Whether ForwardFused runs for x (CUDA kernels built, fp16/bf16 x whose
  // width the fused kernel takes, inference).
  bool CanForwardFused(const torch::Tensor& x) const;
  double layernorm_eps() const { return options_.layernorm_eps; }

 private:
  // The block's parameters in dtype, cached (see LowPrecisionWeights).
  const std::map<std::string, torch::Tensor>& LowPrecision(
      at::ScalarType dtype);
  // attn.proj(attn(h)) and mlp(h) from the cached low-precision weights.
  torch::Tensor AttentionLowPrecision(const torch::Tensor& h,
                                      at::ScalarType dtype);
  torch::Tensor MlpLowPrecision(const torch::Tensor& h, at::ScalarType dtype);

  // Inference on CUDA under fp16/bf16 autocast: the whole block in that
  // dtype, residual stream included, from cached low-precision copies of
  // the weights. Autocast alone keeps the residual in fp32 (pos_embed and
  // LayerScale are fp32) and runs LayerNorm in fp32, which cost a cast
  // before every matmul and strided mixed-dtype adds: 40 % of the ViT's
  // time on an H100.
  torch::Tensor ForwardLowPrecision(const torch::Tensor& x,
                                    at::ScalarType dtype);

  struct LowPrecisionWeights {
    std::vector<std::pair<std::string, torch::Tensor>> params;  // handles
    std::vector<int64_t> key;  // dtype, parameters' data and versions
    std::map<std::string, torch::Tensor> tensors;
  };

  VitBlockOptions options_;
  LowPrecisionWeights low_;
  torch::nn::LayerNorm norm1_{nullptr};
  Attention attn_{nullptr};
  LayerScale ls1_{nullptr};
  torch::nn::LayerNorm norm2_{nullptr};
  Mlp mlp_{nullptr};
  LayerScale ls2_{nullptr};
};
TORCH_MODULE(VitBlock);

// x through `blocks`, then `final_norm` when given. On CUDA in fp16/bf16
// inference each LayerNorm (the next block's norm1, at the end the final
// norm) is fused into the residual add before it (VitBlock::ForwardFused);
// elsewhere the blocks run one by one. A final norm's output is float32
// there, as autocast's LayerNorm gives it.
torch::Tensor RunVitBlocks(const std::vector<VitBlockImpl*>& blocks,
                           const torch::Tensor& x,
                           torch::nn::LayerNormImpl* final_norm);

}  // namespace l2m
