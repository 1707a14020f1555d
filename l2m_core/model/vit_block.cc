#include "l2m_core/model/vit_block.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>

namespace l2m {

AttentionImpl::AttentionImpl(int dim,
                             int num_heads,
                             bool qkv_bias,
                             bool proj_bias)
    : num_heads_(num_heads),
      scale_(1.0 / std::sqrt(static_cast<double>(dim / num_heads))) {
  qkv_ = register_module(
      "qkv",
      torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(qkv_bias)));
  proj_ = register_module(
      "proj",
      torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(proj_bias)));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  // (B, N, 3, heads, C/heads) → (3, B, heads, N, C/heads)
  auto qkv = qkv_(x)
                 .reshape({B, N, 3, num_heads_, C / num_heads_})
                 .permute({2, 0, 3, 1, 4});
#if TORCH_VERSION_MAJOR >= 2
  // Fused attention (flash / memory-efficient kernels on CUDA); the scale
  // is the same 1/sqrt(head_dim) the reference applies to q.
  if (x.is_cuda()) {
    auto out = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
    return proj_(out.transpose(1, 2).reshape({B, N, C}));
  }
#endif
  auto q = qkv[0] * scale_;
  auto attn = torch::matmul(q, qkv[1].transpose(-2, -1)).softmax(-1);
  auto out = torch::matmul(attn, qkv[2]).transpose(1, 2).reshape({B, N, C});
  return proj_(out);
}

MlpImpl::MlpImpl(int dim, int hidden, bool bias) {
  fc1_ = register_module(
      "fc1",
      torch::nn::Linear(torch::nn::LinearOptions(dim, hidden).bias(bias)));
  fc2_ = register_module(
      "fc2",
      torch::nn::Linear(torch::nn::LinearOptions(hidden, dim).bias(bias)));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2_(torch::gelu(fc1_(x)));
}

LayerScaleImpl::LayerScaleImpl(int dim, double init_values) {
  gamma_ = register_parameter("gamma", torch::full({dim}, init_values));
}

VitBlockImpl::VitBlockImpl(const VitBlockOptions& o) {
  auto ln = [&] {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({o.dim}).eps(o.layernorm_eps));
  };
  norm1_ = register_module("norm1", ln());
  attn_ = register_module(
      "attn", Attention(o.dim, o.num_heads, o.qkv_bias, o.proj_bias));
  if (o.init_values > 0)
    ls1_ = register_module("ls1", LayerScale(o.dim, o.init_values));
  norm2_ = register_module("norm2", ln());
  mlp_ = register_module(
      "mlp", Mlp(o.dim, static_cast<int>(o.dim * o.mlp_ratio), o.ffn_bias));
  if (o.init_values > 0)
    ls2_ = register_module("ls2", LayerScale(o.dim, o.init_values));
}

torch::Tensor VitBlockImpl::forward(const torch::Tensor& x_in) {
  auto a = attn_(norm1_(x_in));
  auto x = x_in + (ls1_ ? ls1_(a) : a);
  auto m = mlp_(norm2_(x));
  return x + (ls2_ ? ls2_(m) : m);
}

}  // namespace l2m
