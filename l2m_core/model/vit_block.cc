#include "l2m_core/model/vit_block.h"

#include "l2m_core/model/model_util.h"

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

VitBlockImpl::VitBlockImpl(const VitBlockOptions& o) : options_(o) {
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
  if (x_in.is_cuda() && !is_training() && !torch::GradMode::is_enabled()) {
    const at::ScalarType dtype = CudaComputeDtype(x_in.scalar_type());
    if (dtype == at::kHalf || dtype == at::kBFloat16) {
      return ForwardLowPrecision(x_in, dtype);
    }
  }
  auto a = attn_(norm1_(x_in));
  auto x = x_in + (ls1_ ? ls1_(a) : a);
  auto m = mlp_(norm2_(x));
  return x + (ls2_ ? ls2_(m) : m);
}

torch::Tensor VitBlockImpl::ForwardLowPrecision(const torch::Tensor& x_in,
                                                at::ScalarType dtype) {
  // The parameter handles stay valid (loading and to() replace their data
  // in place), so they are listed once; data pointer and version tell when
  // the copies are stale.
  if (low_.params.empty()) {
    for (const auto& p : named_parameters(/*recurse=*/true)) {
      low_.params.emplace_back(p.key(), p.value());
    }
  }
  std::vector<int64_t> key = {static_cast<int64_t>(dtype)};
  for (const auto& [name, p] : low_.params) {
    key.push_back(reinterpret_cast<int64_t>(p.data_ptr()));
    key.push_back(static_cast<int64_t>(p._version()));
  }
  if (low_.key != key) {
    low_.tensors.clear();
    for (const auto& [name, p] : low_.params) low_.tensors[name] = p.to(dtype);
    low_.key = key;
  }
  auto get = [&](const std::string& name) {
    auto it = low_.tensors.find(name);
    return it == low_.tensors.end() ? torch::Tensor() : it->second;
  };
  AutocastOff explicit_dtype;
  const int64_t B = x_in.size(0), N = x_in.size(1), C = x_in.size(2);
  const int64_t heads = options_.num_heads;
  const std::vector<int64_t> shape = {C};
  auto x = x_in.to(dtype);
  auto h = at::layer_norm(
      x, shape, get("norm1.weight"), get("norm1.bias"), options_.layernorm_eps);
  auto qkv = at::linear(h, get("attn.qkv.weight"), get("attn.qkv.bias"))
                 .reshape({B, N, 3, heads, C / heads})
                 .permute({2, 0, 3, 1, 4});
#if TORCH_VERSION_MAJOR >= 2
  auto o = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
#else
  auto q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(C / heads)));
  auto o = torch::matmul(torch::matmul(q, qkv[1].transpose(-2, -1)).softmax(-1),
                         qkv[2]);
#endif
  auto a = at::linear(o.transpose(1, 2).reshape({B, N, C}),
                      get("attn.proj.weight"),
                      get("attn.proj.bias"));
  const torch::Tensor ls1 = get("ls1.gamma"), ls2 = get("ls2.gamma");
  x = ls1.defined() ? torch::addcmul(x, a, ls1) : x + a;
  h = at::layer_norm(
      x, shape, get("norm2.weight"), get("norm2.bias"), options_.layernorm_eps);
  auto m = at::linear(
      torch::gelu(at::linear(h, get("mlp.fc1.weight"), get("mlp.fc1.bias"))),
      get("mlp.fc2.weight"),
      get("mlp.fc2.bias"));
  return ls2.defined() ? torch::addcmul(x, m, ls2) : x + m;
}

}  // namespace l2m
