#include "l2m_core/model/vit_block.h"

#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/layer_norm_cuda.h"
#endif

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <stdexcept>
#include <tuple>

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

const std::map<std::string, torch::Tensor>& VitBlockImpl::LowPrecision(
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
  return low_.tensors;
}

namespace {

torch::Tensor Get(const std::map<std::string, torch::Tensor>& tensors,
                  const std::string& name) {
  const auto it = tensors.find(name);
  return it == tensors.end() ? torch::Tensor() : it->second;
}

}  // namespace

torch::Tensor VitBlockImpl::AttentionLowPrecision(const torch::Tensor& h,
                                                  at::ScalarType dtype) {
  const auto& w = LowPrecision(dtype);
  const int64_t B = h.size(0), N = h.size(1), C = h.size(2);
  const int64_t heads = options_.num_heads;
  auto qkv = at::linear(h, Get(w, "attn.qkv.weight"), Get(w, "attn.qkv.bias"))
                 .reshape({B, N, 3, heads, C / heads})
                 .permute({2, 0, 3, 1, 4});
#if TORCH_VERSION_MAJOR >= 2
  auto o = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
#else
  auto q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(C / heads)));
  auto o = torch::matmul(torch::matmul(q, qkv[1].transpose(-2, -1)).softmax(-1),
                         qkv[2]);
#endif
  return at::linear(o.transpose(1, 2).reshape({B, N, C}),
                    Get(w, "attn.proj.weight"),
                    Get(w, "attn.proj.bias"));
}

torch::Tensor VitBlockImpl::MlpLowPrecision(const torch::Tensor& h,
                                            at::ScalarType dtype) {
  const auto& w = LowPrecision(dtype);
  return at::linear(torch::gelu(at::linear(
                        h, Get(w, "mlp.fc1.weight"), Get(w, "mlp.fc1.bias"))),
                    Get(w, "mlp.fc2.weight"),
                    Get(w, "mlp.fc2.bias"));
}

torch::Tensor VitBlockImpl::ForwardLowPrecision(const torch::Tensor& x_in,
                                                at::ScalarType dtype) {
  AutocastOff explicit_dtype;
  const auto& w = LowPrecision(dtype);
  const std::vector<int64_t> shape = {x_in.size(2)};
  auto x = x_in.to(dtype);
  auto h = at::layer_norm(x,
                          shape,
                          Get(w, "norm1.weight"),
                          Get(w, "norm1.bias"),
                          options_.layernorm_eps);
  auto a = AttentionLowPrecision(h, dtype);
  const torch::Tensor ls1 = Get(w, "ls1.gamma"), ls2 = Get(w, "ls2.gamma");
  x = ls1.defined() ? torch::addcmul(x, a, ls1) : x + a;
  h = at::layer_norm(x,
                     shape,
                     Get(w, "norm2.weight"),
                     Get(w, "norm2.bias"),
                     options_.layernorm_eps);
  auto m = MlpLowPrecision(h, dtype);
  return ls2.defined() ? torch::addcmul(x, m, ls2) : x + m;
}

bool VitBlockImpl::CanForwardFused(const torch::Tensor& x) const {
#ifdef L2M_HAVE_CUDA_KERNELS
  return !is_training() && !torch::GradMode::is_enabled() &&
         internal::AddScaledLayerNormSupported(x);
#else
  (void)x;
  return false;
#endif
}

std::pair<torch::Tensor, torch::Tensor> VitBlockImpl::Norm1(
    at::ScalarType dtype) {
  const auto& w = LowPrecision(dtype);
  return {Get(w, "norm1.weight"), Get(w, "norm1.bias")};
}

std::pair<torch::Tensor, torch::Tensor> VitBlockImpl::ForwardFused(
    const torch::Tensor& x,
    const torch::Tensor& h,
    const torch::Tensor& next_weight,
    const torch::Tensor& next_bias,
    double next_eps,
    at::ScalarType dtype) {
#ifdef L2M_HAVE_CUDA_KERNELS
  AutocastOff explicit_dtype;
  const auto& w = LowPrecision(dtype);
  const auto [x1, h1] =
      internal::AddScaledLayerNorm(x,
                                   AttentionLowPrecision(h, dtype),
                                   Get(w, "ls1.gamma"),
                                   Get(w, "norm2.weight"),
                                   Get(w, "norm2.bias"),
                                   options_.layernorm_eps);
  const torch::Tensor m = MlpLowPrecision(h1, dtype);
  const torch::Tensor ls2 = Get(w, "ls2.gamma");
  if (!next_weight.defined()) {  // the last block, no norm after it
    return {ls2.defined() ? torch::addcmul(x1, m, ls2) : x1 + m,
            torch::Tensor()};
  }
  return internal::AddScaledLayerNorm(
      x1, m, ls2, next_weight, next_bias, next_eps);
#else
  (void)x, (void)h, (void)next_weight, (void)next_bias, (void)next_eps;
  (void)dtype;
  throw std::logic_error("VitBlock::ForwardFused needs l2m's CUDA kernels");
#endif
}

torch::Tensor RunVitBlocks(const std::vector<VitBlockImpl*>& blocks,
                           const torch::Tensor& x_in,
                           torch::nn::LayerNormImpl* final_norm) {
  const at::ScalarType dtype = CudaComputeDtype(x_in.scalar_type());
  if (x_in.is_cuda() && !blocks.empty() &&
      (dtype == at::kHalf || dtype == at::kBFloat16)) {
    AutocastOff explicit_dtype;
    torch::Tensor x = x_in.to(dtype);
    if (blocks.front()->CanForwardFused(x)) {
      const auto [w0, b0] = blocks.front()->Norm1(dtype);
      torch::Tensor h = at::layer_norm(
          x, {x.size(-1)}, w0, b0, blocks.front()->layernorm_eps());
      for (size_t i = 0; i < blocks.size(); ++i) {
        torch::Tensor next_w, next_b;
        double next_eps = 0;
        if (i + 1 < blocks.size()) {
          std::tie(next_w, next_b) = blocks[i + 1]->Norm1(dtype);
          next_eps = blocks[i + 1]->layernorm_eps();
        } else if (final_norm != nullptr) {
          next_w = final_norm->weight.to(dtype);
          next_b = final_norm->bias.to(dtype);
          next_eps = final_norm->options.eps();
        }
        std::tie(x, h) =
            blocks[i]->ForwardFused(x, h, next_w, next_b, next_eps, dtype);
      }
      // The final norm's output is float32, as autocast's LayerNorm gives.
      return final_norm != nullptr ? h.to(torch::kFloat) : x;
    }
  }
  torch::Tensor x = x_in;
  for (VitBlockImpl* block : blocks) x = block->forward(x);
  return final_norm != nullptr ? final_norm->forward(x) : x;
}

}  // namespace l2m
