#include "l2m_core/model/transformer_decoder.h"

#include "l2m_core/model/vit_block.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace l2m {

TransformerDecoderImpl::TransformerDecoderImpl(
    const TransformerDecoderConfig& config)
    : config_(config) {
  blocks_ = register_module("blocks", torch::nn::Sequential());
  VitBlockOptions options;
  options.dim = config.dim;
  options.num_heads = config.num_heads;
  options.mlp_ratio = config.mlp_ratio;
  options.qkv_bias = false;
  options.layernorm_eps = config.layernorm_eps;
  options.init_values = 0.0;  // no LayerScale
  for (int i = 0; i < config.num_blocks; ++i)
    blocks_->push_back(VitBlock(options));
  to_out_ =
      register_module("to_out", torch::nn::Linear(config.dim, config.OutDim()));
}

CoarseMatch TransformerDecoderImpl::forward(const torch::Tensor& gp_posterior,
                                            const torch::Tensor& features) {
  // Under CUDA autocast the fp32 GP output meets fp16 features; cat needs one
  // dtype.
  const auto dtype =
      torch::promote_types(gp_posterior.scalar_type(), features.scalar_type());
  auto x = torch::cat({gp_posterior.to(dtype), features.to(dtype)}, 1);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto tokens = x.reshape({B, C, H * W}).permute({0, 2, 1});
  std::vector<VitBlockImpl*> blocks;
  for (size_t i = 0; i < blocks_->size(); ++i) {
    blocks.push_back(blocks_[i]->as<VitBlockImpl>());
  }
  auto out = ToOut(RunVitBlocks(blocks, tokens, nullptr));
  out = out.permute({0, 2, 1}).reshape({B, config_.OutDim(), H, W});
  const int64_t n = config_.OutDim() - 1;
  return {out.slice(1, 0, n), out.slice(1, n)};
}

torch::Tensor TransformerDecoderImpl::ToOut(const torch::Tensor& tokens) {
  const int64_t n = config_.OutDim();
  const int64_t padded = (n + 7) / 8 * 8;
  if (padded == n || !tokens.is_cuda() || is_training() ||
      torch::GradMode::is_enabled()) {
    return to_out_(tokens);
  }
  const torch::Tensor& w = to_out_->weight;
  if (padded_of_ != w.data_ptr() || padded_version_ != w._version() ||
      padded_weight_.device() != w.device()) {
    padded_weight_ = torch::zeros({padded, w.size(1)}, w.options());
    padded_weight_.narrow(0, 0, n).copy_(w);
    padded_bias_ = torch::zeros({padded}, w.options());
    if (to_out_->bias.defined())
      padded_bias_.narrow(0, 0, n).copy_(to_out_->bias);
    padded_of_ = w.data_ptr();
    padded_version_ = w._version();
  }
  // at::linear, not the C++ frontend's: for a 3-D input that one runs
  // matmul + add_ (0.5 ms over the padded logits of 8 pairs, H100), ATen's
  // puts the bias in the GEMM's epilogue as the reference's nn.Linear does.
  // (Only here: on the CPU, at::linear made the full-size ViT 8 % slower,
  // 70 → 76 s a pair with OpenMP OpenBLAS, so the modules keep their
  // forward; docs/PERFORMANCE.md, session 11.)
  return at::linear(tokens, padded_weight_, padded_bias_).narrow(-1, 0, n);
}

torch::Tensor ClsToFlowRefine(const torch::Tensor& cls_logits) {
  const int64_t C = cls_logits.size(1);
  const int64_t res = std::llround(std::sqrt(static_cast<double>(C)));
  // The arithmetic is float32 whatever the logits' dtype; only the max and
  // the five gathered logits are widened (exactly), not the whole (B, R², h,
  // w) map (a 0.4 ms cast at 16 images of fp16 logits, H100).
  const auto opts = cls_logits.options().dtype(torch::kFloat);
  auto lin = torch::linspace(-1 + 1.0 / res, 1 - 1.0 / res, res, opts);
  auto g = torch::meshgrid({lin, lin}, "ij");
  auto G = torch::stack({g[1], g[0]}, -1).reshape({C, 2});  // anchor k → (x, y)
  // RoMa normalises softmax(cls) over the five anchors around the mode; the
  // softmax's denominator cancels in that ratio, so exp(logit - max logit)
  // of the five gives the same flow without a softmax over all anchors (a
  // channel-wise softmax over 4096 anchors took 4.6 ms on an H100).
  auto [max_logit, mode] = cls_logits.max(1, /*keepdim=*/true);  // (B,1,H,W)
  auto index = torch::cat({mode - 1, mode, mode + 1, mode - res, mode + res}, 1)
                   .clamp(0, C - 1);  // (B, 5, H, W)
  auto neighbours = (torch::gather(cls_logits, 1, index).to(torch::kFloat) -
                     max_logit.to(torch::kFloat))
                        .exp()
                        .unsqueeze(-1);  // (B, 5, H, W, 1)
  auto anchors = G.index({index});       // (B, 5, H, W, 2)
  // Sum in the reference's order (n0·G0 + n1·G1 + ...).
  auto flow = neighbours.select(1, 0) * anchors.select(1, 0);
  for (int k = 1; k < 5; ++k)
    flow = flow + neighbours.select(1, k) * anchors.select(1, k);
  flow = flow / neighbours.sum(1);
  return flow.permute({0, 3, 1, 2});
}

}  // namespace l2m
