#pragma once

#include "l2m_core/model/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

// DINOv2 ViT (romatch/models/transformer/dinov2.py), the coarse encoder. Module
// and parameter names give the DINOv2 state-dict keys: cls_token, pos_embed,
// mask_token, patch_embed.proj.*,
// blocks.{i}.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,mlp.fc2,ls2}.*,
// norm.*.

namespace l2m {

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int patch_size, int embed_dim);
  // (B, 3, H, W) → (B, H/p · W/p, C), row-major over the patch grid.
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int patch_size_;
  torch::nn::Conv2d proj_{nullptr};
};
TORCH_MODULE(PatchEmbed);

class DinoVisionTransformerImpl : public torch::nn::Module {
 public:
  explicit DinoVisionTransformerImpl(const DinoConfig& config);

  // x_norm_patchtokens of the last block (after the final LayerNorm) as
  // (B, C, H/p, W/p). H and W must be multiples of the patch size.
  torch::Tensor forward(const torch::Tensor& x);

  const DinoConfig& config() const { return config_; }

 private:
  // pos_embed resized to the (h, w) patch grid: bicubic with the DINO "+0.1"
  // scale factors.
  torch::Tensor InterpolatePosEncoding(int64_t h,
                                       int64_t w,
                                       int64_t H,
                                       int64_t W) const;

  // The blocks and the final LayerNorm on the tokens (B, N, C).
  torch::Tensor Blocks(const torch::Tensor& x);

  // The resized pos_embed of the last inference call (the bicubic resize of
  // a 37² × 1024 grid took 8.4 ms on an H100, 40 % of the ViT), valid while
  // pos_embed is the same tensor at the same version.
  struct PosCache {
    std::vector<int64_t> key;
    torch::Tensor value;
  };

  DinoConfig config_;
  PosCache pos_cache_;
  torch::Tensor cls_token_;
  torch::Tensor pos_embed_;
  torch::Tensor
      mask_token_;  // unused at inference; kept for the state-dict keys
  PatchEmbed patch_embed_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(DinoVisionTransformer);

}  // namespace l2m
