#include "l2m_core/model/conv_refiner.h"

#include "l2m_core/model/local_correlation.h"
#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/bias_activation_cuda.h"
#include "l2m_core/model/refiner_block_cuda.h"
#include "l2m_core/model/refiner_input_cuda.h"
#endif

#include <torch/torch.h>

#include <algorithm>
#include <utility>

namespace l2m {
namespace {

torch::nn::Sequential MakeBlock(int in_dim,
                                int out_dim,
                                int kernel_size,
                                double bn_momentum) {
  namespace nn = torch::nn;
  return nn::Sequential(
      nn::Conv2d(nn::Conv2dOptions(in_dim, out_dim, kernel_size)
                     .padding(kernel_size / 2)
                     .groups(in_dim)),
      nn::BatchNorm2d(nn::BatchNorm2dOptions(out_dim).momentum(bn_momentum)),
      nn::ReLU(nn::ReLUOptions(true)),
      nn::Conv2d(nn::Conv2dOptions(out_dim, out_dim, 1)));
}

}  // namespace

ConvRefinerImpl::ConvRefinerImpl(const ConvRefinerConfig& config)
    : config_(config) {
  namespace nn = torch::nn;
  block1_ = register_module("block1",
                            MakeBlock(config.in_dim,
                                      config.hidden_dim,
                                      config.kernel_size,
                                      config.bn_momentum));
  hidden_blocks_ = register_module("hidden_blocks", nn::ModuleList());
  for (int i = 0; i < config.hidden_blocks; ++i) {
    hidden_blocks_->push_back(MakeBlock(config.hidden_dim,
                                        config.hidden_dim,
                                        config.kernel_size,
                                        config.bn_momentum));
  }
  out_conv_ = register_module(
      "out_conv",
      nn::Conv2d(nn::Conv2dOptions(config.hidden_dim, config.out_dim, 1)));
  disp_emb_ = register_module(
      "disp_emb", nn::Conv2d(nn::Conv2dOptions(2, config.disp_emb_dim, 1)));
}

Refinement ConvRefinerImpl::forward(const torch::Tensor& x,
                                    const torch::Tensor& y_in,
                                    const torch::Tensor& flow,
                                    double scale_factor,
                                    int64_t support_offset) {
  namespace F = torch::nn::functional;
  const int64_t B = x.size(0), h = x.size(2), w = x.size(3);
  TORCH_CHECK(support_offset >= 0 && support_offset < std::max<int64_t>(B, 1),
              "ConvRefiner: support_offset ",
              support_offset,
              " outside [0, ",
              B,
              ")");
  const bool fused = CanRunFused(x);
  const bool assemble = fused && AssembleOnGpu(x, y_in, flow);
  // Only the one-kernel assembly and the local correlation kernel read y at
  // an offset; elsewhere the support batch is rolled into place.
  torch::Tensor y = y_in;
  if (support_offset != 0 && !assemble) {
    y = torch::roll(y_in, {-support_offset}, {0});
    support_offset = 0;
  }
  auto local_corr = [&] {
    ScopedStage timed("local_correlation");
    // disable_local_corr_grad=True in RoMa: features learn through the
    // grid-sampled x_hat, not through the correlation window.
    torch::NoGradGuard no_grad;
    return LocalCorrelation(
        x, y, config_.local_corr_radius, flow, support_offset);
  };
#ifdef L2M_HAVE_CUDA_KERNELS
  if (assemble) {
    // x_hat, the displacement embedding and the padding in one kernel
    // (AssembleRefinerInput) instead of ~10 LibTorch launches.
    const at::ScalarType dtype = CudaComputeDtype(x.scalar_type());
    torch::Tensor d;
    {
      internal::RefinerInputParts parts;
      parts.x = x;
      parts.y = y;
      parts.flow = flow;
      parts.identity = IdentityGrid(h, w, flow.options()).contiguous();
      parts.emb_weight = disp_emb_->weight;
      parts.emb_bias =
          disp_emb_->bias.defined()
              ? disp_emb_->bias
              : torch::zeros({config_.disp_emb_dim}, flow.options());
      parts.emb_scale = 40.0 / 32.0 * scale_factor;
      parts.support_offset = support_offset;
      if (config_.local_corr_radius > 0) parts.corr = local_corr();
      const int64_t channels = x.size(1) + y.size(1) + config_.disp_emb_dim +
                               (parts.corr.defined() ? parts.corr.size(1) : 0);
      TORCH_CHECK(channels == config_.in_dim,
                  "ConvRefiner: inputs have ",
                  channels,
                  " channels, the weights ",
                  config_.in_dim);
      const FusedWeights& f = Fused(dtype, x.device());
      d = torch::empty({B, h, w, f.channels}, x.options().dtype(dtype));
      internal::AssembleRefinerInput(parts, d);
    }
    // Moved: each block's input is freed once the next one is written.
    return CudaBlocks(std::move(d), dtype);
  }
#endif
  // The reference samples with the grid in the features' dtype.
  const torch::Tensor grid = flow.permute({0, 2, 3, 1}).to(y.scalar_type());
  // On the fused CUDA path x_hat is sampled straight into the blocks' input
  // buffer (CudaInference); it stays undefined here.
  torch::Tensor x_hat;
  if (!fused || !SampleIntoBuffer(y, x)) {
    x_hat = F::grid_sample(y,
                           grid,
                           F::GridSampleFuncOptions()
                               .mode(torch::kBilinear)
                               .padding_mode(torch::kZeros)
                               .align_corners(false));
  }
  auto displacement =
      flow - IdentityGrid(h, w, flow.options()).expand({B, 2, h, w});
  auto emb = disp_emb_(40.0 / 32.0 * scale_factor * displacement);
  std::vector<torch::Tensor> parts = {x, x_hat, emb};
  if (config_.local_corr_radius > 0) parts.push_back(local_corr());
  if (fused) {
    return CudaInference(parts, CudaComputeDtype(x.scalar_type()), y, grid);
  }
  auto d = torch::cat(parts, 1);
  // Follow the weights' layout: channels-last weights want NHWC activations.
  const auto& weight = block1_[0]->as<torch::nn::Conv2dImpl>()->weight;
  if (weight.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    d = d.contiguous(at::MemoryFormat::ChannelsLast);
  }
  d = RunBlock(block1_, d);
  for (const auto& block : *hidden_blocks_) {
    torch::nn::Sequential sequential(
        std::dynamic_pointer_cast<torch::nn::SequentialImpl>(block));
    d = RunBlock(sequential, d);
  }
  AutocastOff fp32;
  d = out_conv_(d.to(torch::kFloat));
  return {d.slice(1, 0, config_.out_dim - 1), d.slice(1, config_.out_dim - 1)};
}

torch::Tensor ConvRefinerImpl::RunBlock(torch::nn::Sequential& block,
                                        const torch::Tensor& x) const {
  // [depthwise conv, BN, ReLU, 1x1 conv]; BN skipped once folded.
  auto d = block[0]->as<torch::nn::Conv2dImpl>()->forward(x);
  if (!bn_folded_) d = block[1]->as<torch::nn::BatchNorm2dImpl>()->forward(d);
  d = torch::relu_(d);
  return block[3]->as<torch::nn::Conv2dImpl>()->forward(d);
}

bool ConvRefinerImpl::CanRunFused(const torch::Tensor& x) const {
#ifdef L2M_HAVE_CUDA_KERNELS
  return x.is_cuda() && bn_folded_ && !is_training() &&
         !torch::GradMode::is_enabled() && config_.hidden_dim == config_.in_dim;
#else
  (void)x;
  return false;
#endif
}

bool ConvRefinerImpl::SampleIntoBuffer(const torch::Tensor& y,
                                       const torch::Tensor& x) const {
#ifdef L2M_HAVE_CUDA_KERNELS
  // x fills channels [0, C_x) of the buffer: x_hat's offset must stay
  // 16-byte aligned.
  return x.size(1) % 8 == 0 && internal::GridSampleIntoSupported(
                                   y, CudaComputeDtype(x.scalar_type()));
#else
  (void)y;
  (void)x;
  return false;
#endif
}

bool ConvRefinerImpl::AssembleOnGpu(const torch::Tensor& x,
                                    const torch::Tensor& y,
                                    const torch::Tensor& flow) const {
#ifdef L2M_HAVE_CUDA_KERNELS
  const at::ScalarType dtype = CudaComputeDtype(x.scalar_type());
  return internal::AssembleRefinerInputSupported(x, y, dtype) &&
         flow.scalar_type() == torch::kFloat &&
         disp_emb_->weight.scalar_type() == torch::kFloat &&
         (!disp_emb_->bias.defined() ||
          disp_emb_->bias.scalar_type() == torch::kFloat);
#else
  (void)x;
  (void)y;
  (void)flow;
  return false;
#endif
}

const ConvRefinerImpl::FusedWeights& ConvRefinerImpl::Fused(
    at::ScalarType dtype, torch::Device device) {
  if (fused_.channels > 0 && fused_.dtype == dtype &&
      fused_.out_weight.device() == device) {
    return fused_;
  }
  torch::NoGradGuard no_grad;
  FusedWeights f;
  f.dtype = dtype;
  const int64_t C = config_.hidden_dim;
  const int64_t P = (C + 7) / 8 * 8;
  f.channels = P;
  const auto on = torch::TensorOptions().device(device);
  auto add = [&](torch::nn::Sequential& block) {
    const auto& dw = *block[0]->as<torch::nn::Conv2dImpl>();
    const auto& pw = *block[3]->as<torch::nn::Conv2dImpl>();
    const int64_t K = dw.weight.size(2);
    auto w = torch::zeros({P, 1, K, K}, on.dtype(torch::kFloat));
    w.narrow(0, 0, C).copy_(dw.weight);
    f.dw_weight.push_back(
        w.to(dtype).contiguous(at::MemoryFormat::ChannelsLast));
    auto b = torch::zeros({P}, on.dtype(torch::kFloat));
    if (dw.bias.defined()) b.narrow(0, 0, C).copy_(dw.bias);
    f.dw_bias.push_back(b);
    f.dw_taps.push_back(w.view({P, K * K}).t().contiguous());
    auto m = torch::zeros({P, P}, on.dtype(torch::kFloat));
    m.narrow(0, 0, C).narrow(1, 0, C).copy_(pw.weight.reshape({C, C}));
    f.pw_weight.push_back(m.to(dtype));
    auto mb = torch::zeros({P}, on.dtype(torch::kFloat));
    if (pw.bias.defined()) mb.narrow(0, 0, C).copy_(pw.bias);
    f.pw_bias.push_back(mb.to(dtype));
    f.pw_bias_float.push_back(mb);
  };
  add(block1_);
  for (const auto& block : *hidden_blocks_) {
    torch::nn::Sequential s(
        std::dynamic_pointer_cast<torch::nn::SequentialImpl>(block));
    add(s);
  }
  const int64_t out_dim = config_.out_dim;
  f.out_weight = torch::zeros({out_dim, P}, on.dtype(torch::kFloat));
  f.out_weight.narrow(1, 0, C).copy_(out_conv_->weight.reshape({out_dim, C}));
  f.out_bias = out_conv_->bias.defined()
                   ? out_conv_->bias.to(device, torch::kFloat)
                   : torch::zeros({out_dim}, on.dtype(torch::kFloat));
  fused_ = std::move(f);
  return fused_;
}

Refinement ConvRefinerImpl::CudaInference(
    const std::vector<torch::Tensor>& parts,
    at::ScalarType dtype,
    const torch::Tensor& y,
    const torch::Tensor& grid) {
#ifdef L2M_HAVE_CUDA_KERNELS
  const torch::Tensor& x = parts.front();
  const FusedWeights& f = Fused(dtype, x.device());
  const int64_t B = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t P = f.channels;
  AutocastOff explicit_dtypes;
  // cat + channels-last + padding in one pass over the activations.
  auto d = torch::empty({B, h, w, P}, x.options().dtype(dtype));
  int64_t offset = 0;
  for (const auto& part : parts) {
    if (!part.defined()) {  // x_hat, sampled in place
      internal::GridSampleInto(y, grid.contiguous(), d, offset);
      offset += y.size(1);
      continue;
    }
    const int64_t c = part.size(1);
    d.narrow(3, offset, c).copy_(part.permute({0, 2, 3, 1}));
    offset += c;
  }
  TORCH_CHECK(offset == config_.in_dim,
              "ConvRefiner: inputs have ",
              offset,
              " channels, the weights ",
              config_.in_dim);
  if (offset < P) d.narrow(3, offset, P - offset).zero_();
  return CudaBlocks(std::move(d), dtype);
#else
  (void)parts;
  (void)dtype;
  (void)y;
  (void)grid;
  throw std::logic_error("ConvRefiner: built without CUDA kernels");
#endif
}

Refinement ConvRefinerImpl::CudaBlocks(torch::Tensor d, at::ScalarType dtype) {
#ifdef L2M_HAVE_CUDA_KERNELS
  const FusedWeights& f = Fused(dtype, d.device());
  const int64_t B = d.size(0), h = d.size(1), w = d.size(2);
  const int64_t P = f.channels;
  AutocastOff explicit_dtypes;
  const int64_t K = config_.kernel_size;
  const bool one_kernel = internal::RefinerBlockFusedSupported(P, K, dtype);
  const bool own_depthwise = internal::DepthwiseBiasReluSupported(P, K, dtype);
  const int64_t out_dim = config_.out_dim;
  const size_t blocks = f.dw_weight.size();
  for (size_t i = 0; i < blocks; ++i) {
    if (one_kernel && i + 1 == blocks && P > 64 &&
        out_dim <= internal::kRefinerOutConvMaxOut) {
      // The last block with the out_conv (fp32, as the reference) in its
      // epilogue: its activations never go to memory. At 144 channels
      // (H100, 8 pairs, 864²) 1.69 ms against 1.42 + 0.65 for the block and
      // RefinerOutConv; at 24 the epilogue's reduction costs what it saves
      // (1.22 against 0.89 + 0.29 ms), so narrower blocks keep the split.
      auto out = internal::RefinerBlockFusedOutConv(d,
                                                    f.dw_taps[i],
                                                    f.dw_bias[i],
                                                    f.pw_weight[i],
                                                    f.pw_bias_float[i],
                                                    f.out_weight,
                                                    f.out_bias);
      return {out.slice(1, 0, out_dim - 1), out.slice(1, out_dim - 1)};
    }
    if (one_kernel) {
      auto y = torch::empty_like(d);
      internal::RefinerBlockFused(
          d, f.dw_taps[i], f.dw_bias[i], f.pw_weight[i], f.pw_bias_float[i], y);
      d = y;
      continue;
    }
    if (own_depthwise) {
      // Wide blocks in fp16/bf16: depthwise + bias + ReLU in one kernel,
      // then the 1×1 as one GEMM with its bias.
      auto y = torch::empty_like(d);
      internal::DepthwiseBiasRelu(d, f.dw_taps[i], f.dw_bias[i], y);
      d = torch::addmm(f.pw_bias[i], y.view({-1, P}), f.pw_weight[i].t())
              .view({B, h, w, P});
      continue;
    }
    // float32: cuDNN's depthwise conv (no bias) on the channels-last view,
    // then bias and ReLU in one pass (LibTorch would add the bias with a
    // strided broadcast kernel and run the ReLU as a second pass).
    auto y = torch::conv2d(
        d.permute({0, 3, 1, 2}), f.dw_weight[i], {}, 1, K / 2, 1, P);
    if (!y.is_contiguous(at::MemoryFormat::ChannelsLast)) {
      y = y.contiguous(at::MemoryFormat::ChannelsLast);
    }
    internal::BiasReluInplace(y, f.dw_bias[i]);
    d = y.permute({0, 2, 3, 1});
    d = torch::addmm(f.pw_bias[i], d.view({-1, P}), f.pw_weight[i].t())
            .view({B, h, w, P});
  }
  // out_conv in fp32, as the reference.
  if (dtype != torch::kFloat && out_dim <= internal::kRefinerOutConvMaxOut) {
    // Widened inside the kernel instead of through a float32 copy.
    auto out = internal::RefinerOutConv(d, f.out_weight, f.out_bias);
    return {out.slice(1, 0, out_dim - 1), out.slice(1, out_dim - 1)};
  }
  auto out =
      torch::addmm(
          f.out_bias, d.view({-1, P}).to(torch::kFloat), f.out_weight.t())
          .view({B, h, w, out_dim})
          .permute({0, 3, 1, 2});
  return {out.slice(1, 0, out_dim - 1), out.slice(1, out_dim - 1)};
#else
  (void)d;
  (void)dtype;
  throw std::logic_error("ConvRefiner: built without CUDA kernels");
#endif
}

void ConvRefinerImpl::FoldBatchNorm() {
  if (bn_folded_) return;
  auto fold = [](torch::nn::Sequential& block) {
    FoldBatchNormIntoConv(*block[0]->as<torch::nn::Conv2dImpl>(),
                          *block[1]->as<torch::nn::BatchNorm2dImpl>());
  };
  fold(block1_);
  for (const auto& block : *hidden_blocks_) {
    torch::nn::Sequential s(
        std::dynamic_pointer_cast<torch::nn::SequentialImpl>(block));
    fold(s);
  }
  bn_folded_ = true;
  fused_ = FusedWeights();
}

}  // namespace l2m
