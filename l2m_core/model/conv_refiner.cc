#include "l2m_core/model/conv_refiner.h"

#include "l2m_core/model/local_correlation.h"
#include "l2m_core/model/model_util.h"

#include <torch/torch.h>

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
                                    const torch::Tensor& y,
                                    const torch::Tensor& flow,
                                    double scale_factor) {
  namespace F = torch::nn::functional;
  const int64_t B = x.size(0), h = x.size(2), w = x.size(3);
  auto x_hat = F::grid_sample(y,
                              flow.permute({0, 2, 3, 1}).to(y.scalar_type()),
                              F::GridSampleFuncOptions()
                                  .mode(torch::kBilinear)
                                  .padding_mode(torch::kZeros)
                                  .align_corners(false));
  auto displacement =
      flow - IdentityGrid(h, w, flow.options()).expand({B, 2, h, w});
  auto emb = disp_emb_(40.0 / 32.0 * scale_factor * displacement);
  std::vector<torch::Tensor> parts = {x, x_hat, emb};
  if (config_.local_corr_radius > 0) {
    ScopedStage timed("local_correlation");
    // disable_local_corr_grad=True in RoMa: features learn through the
    // grid-sampled x_hat, not through the correlation window.
    torch::NoGradGuard no_grad;
    parts.push_back(LocalCorrelation(x, y, config_.local_corr_radius, flow));
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
}

}  // namespace l2m
