#include "l2m_core/model/dinov2.h"

#include "l2m_core/model/model_util.h"
#include "l2m_core/model/vit_block.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace l2m {

PatchEmbedImpl::PatchEmbedImpl(int patch_size, int embed_dim)
    : patch_size_(patch_size) {
  proj_ = register_module(
      "proj",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, embed_dim, patch_size)
                            .stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  const at::ScalarType dtype = CudaComputeDtype(x.scalar_type());
  if (x.is_cuda() && !is_training() && !torch::GradMode::is_enabled() &&
      (dtype == at::kHalf || dtype == at::kBFloat16)) {
    // fp16/bf16 inference on CUDA: the stride-p conv as one GEMM over the
    // unfolded patches. For 3 input channels cuDNN picked a 1 ms kernel for
    // 16 images on an H100; the GEMM is ~10× faster, the same sums in
    // another order.
    AutocastOff explicit_dtype;
    const int64_t B = x.size(0), C = x.size(1), p = patch_size_;
    const int64_t h = x.size(2) / p, w = x.size(3) / p;
    const int64_t E = proj_->weight.size(0);
    const torch::Tensor patches = x.to(dtype)
                                      .reshape({B, C, h, p, w, p})
                                      .permute({0, 2, 4, 1, 3, 5})
                                      .reshape({B * h * w, C * p * p});
    const torch::Tensor bias =
        proj_->bias.defined() ? proj_->bias.to(dtype) : torch::Tensor();
    return at::linear(patches, proj_->weight.to(dtype).reshape({E, -1}), bias)
        .view({B, h * w, E});
  }
  return proj_(x).flatten(2).transpose(1, 2);
}

DinoVisionTransformerImpl::DinoVisionTransformerImpl(const DinoConfig& config)
    : config_(config) {
  const int C = config.embed_dim;
  const int n = config.PosGridSize();
  // Random init only matters for benchmarks; real weights are always loaded.
  cls_token_ = register_parameter("cls_token", torch::randn({1, 1, C}) * 1e-6);
  pos_embed_ =
      register_parameter("pos_embed", torch::randn({1, 1 + n * n, C}) * 0.02);
  mask_token_ = register_parameter("mask_token", torch::zeros({1, C}));
  patch_embed_ =
      register_module("patch_embed", PatchEmbed(config.patch_size, C));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  VitBlockOptions options;
  options.dim = C;
  options.num_heads = config.num_heads;
  options.mlp_ratio = config.mlp_ratio;
  options.qkv_bias = config.qkv_bias;
  options.proj_bias = config.proj_bias;
  options.ffn_bias = config.ffn_bias;
  options.layernorm_eps = config.layernorm_eps;
  options.init_values = config.init_values;
  for (int i = 0; i < config.depth; ++i) blocks_->push_back(VitBlock(options));
  norm_ = register_module(
      "norm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({C}).eps(config.layernorm_eps)));
}

torch::Tensor DinoVisionTransformerImpl::InterpolatePosEncoding(
    int64_t h, int64_t w, int64_t H, int64_t W) const {
  const int64_t n = config_.PosGridSize();
  // The reference returns pos_embed untouched only for a square input of the
  // native size.
  if (h * w == n * n && H == W) return pos_embed_;
  const int64_t C = pos_embed_.size(2);
  auto pos = pos_embed_.to(torch::kFloat);
  auto cls_pos = pos.slice(1, 0, 1);
  auto grid = pos.slice(1, 1).reshape({1, n, n, C}).permute({0, 3, 1, 2});
  // F.interpolate(scale_factor=((h+0.1)/n, (w+0.1)/n), bicubic): the kernel
  // maps output to source coordinates with the given factors, not with n/h, so
  // pass them through.
  const double sh =
      (static_cast<double>(h) + 0.1) / std::sqrt(static_cast<double>(n * n));
  const double sw =
      (static_cast<double>(w) + 0.1) / std::sqrt(static_cast<double>(n * n));
  const int64_t out_h =
      static_cast<int64_t>(std::floor(static_cast<double>(n) * sh));
  const int64_t out_w =
      static_cast<int64_t>(std::floor(static_cast<double>(n) * sw));
  if (out_h != h || out_w != w)
    throw std::logic_error("DINOv2 pos_embed interpolation size mismatch");
  grid = at::upsample_bicubic2d(
      grid, {out_h, out_w}, /*align_corners=*/false, sh, sw);
  grid = grid.permute({0, 2, 3, 1}).reshape({1, h * w, C});
  return torch::cat({cls_pos, grid}, 1).to(pos_embed_.scalar_type());
}

torch::Tensor DinoVisionTransformerImpl::forward(const torch::Tensor& x_in) {
  const int64_t B = x_in.size(0), H = x_in.size(2), W = x_in.size(3);
  const int p = config_.patch_size;
  if (H % p != 0 || W % p != 0) {
    throw std::invalid_argument(
        "DINOv2 input size must be a multiple of the patch size");
  }
  const int64_t h = H / p, w = W / p;
  auto x = patch_embed_(x_in.to(pos_embed_.scalar_type()));
  x = torch::cat({cls_token_.expand({B, -1, -1}).to(x.scalar_type()), x}, 1);
  torch::Tensor pos;
  if (!torch::GradMode::is_enabled() && !is_training()) {
    const std::vector<int64_t> key = {
        h,
        w,
        H,
        W,
        static_cast<int64_t>(x.scalar_type()),
        reinterpret_cast<int64_t>(pos_embed_.data_ptr()),
        static_cast<int64_t>(pos_embed_._version())};
    if (pos_cache_.key != key) {
      pos_cache_.value = InterpolatePosEncoding(h, w, H, W).to(x.scalar_type());
      pos_cache_.key = key;
    }
    pos = pos_cache_.value;
  } else {
    pos = InterpolatePosEncoding(h, w, H, W).to(x.scalar_type());
  }
  x = x + pos;
  x = Blocks(x);
  return x.slice(1, 1).permute({0, 2, 1}).reshape({B, config_.embed_dim, h, w});
}

torch::Tensor DinoVisionTransformerImpl::Blocks(const torch::Tensor& x) {
  std::vector<VitBlockImpl*> blocks;
  for (const auto& block : *blocks_) blocks.push_back(block->as<VitBlock>());
  return RunVitBlocks(blocks, x, norm_.get());
}

}  // namespace l2m
