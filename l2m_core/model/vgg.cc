#include "l2m_core/model/vgg.h"

#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/bias_activation_cuda.h"
#include "l2m_core/model/input_conv_cuda.h"
#include "l2m_core/model/max_pool_cuda.h"
#endif

#include <torch/torch.h>

namespace l2m {

Vgg19Impl::Vgg19Impl(const VggConfig& config) {
  layers_ = register_module("layers", torch::nn::ModuleList());
  int in = 3;
  auto add = [&](std::shared_ptr<torch::nn::Module> m, bool pool) {
    if (static_cast<int>(is_pool_.size()) >= config.num_layers) return;
    layers_->push_back(m);
    is_pool_.push_back(pool);
  };
  for (int v : config.cfg) {
    if (v == VggConfig::kVggMaxPool) {
      add(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)).ptr(),
          true);
    } else {
      add(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, v, 3).padding(1))
              .ptr(),
          false);
      add(torch::nn::BatchNorm2d(v).ptr(), false);
      add(torch::nn::ReLU(torch::nn::ReLUOptions(true)).ptr(), false);
      in = v;
    }
  }
}

FeaturePyramid Vgg19Impl::forward(const torch::Tensor& input) {
  FeaturePyramid feats;
  torch::Tensor x = input;
  // Follow the weights' layout (ConvertConvWeightsToChannelsLast).
  if (layers_[0]->as<torch::nn::Conv2dImpl>()->weight.is_contiguous(
          at::MemoryFormat::ChannelsLast)) {
    x = x.contiguous(at::MemoryFormat::ChannelsLast);
  }
  int scale = 1;
  const size_t n = layers_->size();
  for (size_t i = 0; i < n; ++i) {
    if (is_pool_[i]) {
      feats[scale] = x;
      scale *= 2;
      // The reference also runs the last pool and discards its output.
      if (i + 1 == n) break;
    }
    if (auto* conv = layers_[i]->as<torch::nn::Conv2dImpl>()) {
#ifdef L2M_HAVE_CUDA_KERNELS
      // Inference on CUDA with the BN folded: conv without bias, then bias
      // and the ReLU two layers on in one pass (saves two passes over the
      // activations per layer).
      if (bn_folded_ && x.is_cuda() && !is_training() &&
          !torch::GradMode::is_enabled() && i + 2 < n &&
          layers_[i + 2]->as<torch::nn::ReLUImpl>() != nullptr &&
          conv->bias.defined() && conv->weight.size(2) == 3 &&
          conv->weight.size(3) == 3) {
        // The first conv, on the float32 image under autocast: l2m's kernel
        // (cuDNN takes a slow kernel for 3 input channels, then the bias
        // pass), rounding as autocast's conv and the bias pass round.
        const at::ScalarType compute = CudaComputeDtype(torch::kFloat);
        if (x.scalar_type() == torch::kFloat && compute != torch::kFloat &&
            internal::InputConvBiasReluSupported(x, conv->weight, compute)) {
          auto& cached = low_precision_[i];
          if (!cached.first.defined() ||
              cached.first.scalar_type() != torch::kFloat ||
              cached.first.device() != x.device() ||
              !cached.first.is_contiguous()) {
            cached = {conv->weight.to(torch::kFloat).contiguous(),
                      conv->bias.to(torch::kFloat).contiguous()};
          }
          x = internal::InputConvBiasRelu(
              x, cached.first, cached.second, compute);
          i += 2;  // BN (folded) and ReLU done
          continue;
        }
        // VGG's 3×3 convs: stride 1, padding 1. In fp16/bf16 cuDNN fuses
        // bias and ReLU into the conv at the conv's own speed (measured on
        // an H200: docs/PERFORMANCE.md, session 5); float32 keeps the
        // separate pass so the parity path stays as it was.
        if (x.scalar_type() != torch::kFloat &&
            at::globalContext().userEnabledCuDNN()) {
          auto& cached = low_precision_[i];
          if (!cached.first.defined() ||
              cached.first.scalar_type() != x.scalar_type() ||
              cached.first.device() != x.device()) {
            cached = {conv->weight.to(x.scalar_type()),
                      conv->bias.to(x.scalar_type())};
          }
          x = at::cudnn_convolution_relu(
              x, cached.first, cached.second, {1, 1}, {1, 1}, {1, 1}, 1);
          i += 2;  // BN (folded) and ReLU done
          continue;
        }
        torch::Tensor y = torch::conv2d(x, conv->weight, {}, 1, 1);
        if (internal::BiasReluInplaceSupported(y)) {
          internal::BiasReluInplace(y, conv->bias.to(torch::kFloat));
          i += 2;  // BN (folded) and ReLU done
        } else {
          y.add_(conv->bias.view({1, -1, 1, 1}).to(y.scalar_type()));
        }
        x = y;
        continue;
      }
#endif
      x = conv->forward(x);
    } else if (auto* bn = layers_[i]->as<torch::nn::BatchNorm2dImpl>()) {
      if (!bn_folded_) x = bn->forward(x);
    } else if (auto* relu = layers_[i]->as<torch::nn::ReLUImpl>()) {
      x = relu->forward(x);
    } else if (auto* pool = layers_[i]->as<torch::nn::MaxPool2dImpl>()) {
#ifdef L2M_HAVE_CUDA_KERNELS
      const auto& o = pool->options;
      if (bn_folded_ && !is_training() && !torch::GradMode::is_enabled() &&
          internal::MaxPool2x2Supported(x) && (*o.kernel_size())[0] == 2 &&
          (*o.kernel_size())[1] == 2 && (*o.stride())[0] == 2 &&
          (*o.stride())[1] == 2 && (*o.padding())[0] == 0 &&
          (*o.padding())[1] == 0 && (*o.dilation())[0] == 1 &&
          (*o.dilation())[1] == 1 && !o.ceil_mode()) {
        x = internal::MaxPool2x2(x);
        continue;
      }
#endif
      x = pool->forward(x);
    }
  }
  // Convs after the last pool: one more, coarser map (CNN coarse encoder).
  if (n > 0 && !is_pool_.back()) feats[scale] = x;
  return feats;
}

void Vgg19Impl::FoldBatchNorm() {
  if (bn_folded_) return;
  low_precision_.clear();
  for (size_t i = 0; i + 1 < layers_->size(); ++i) {
    auto* conv = layers_[i]->as<torch::nn::Conv2dImpl>();
    auto* bn = layers_[i + 1]->as<torch::nn::BatchNorm2dImpl>();
    if (conv != nullptr && bn != nullptr) FoldBatchNormIntoConv(*conv, *bn);
  }
  bn_folded_ = true;
}

}  // namespace l2m
