#include "colmap_plugin/vit_descriptor.h"

#include "l2m_core/image/preprocess.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/strict_load.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <stdexcept>

namespace l2m {

struct VitGemDescriptor::Impl {
  VitDescriptorOptions options;
  torch::Device device{torch::kCPU};
  DinoVisionTransformer vit{nullptr};
};

void VitDescriptorOptions::Check() const {
  if (weights.empty()) {
    throw std::invalid_argument(
        "the dinov2_gem descriptor needs --Retrieval.weights (a DINOv2 "
        "checkpoint or cached model name)");
  }
  if (input_size < 14 || input_size % 14 != 0) {
    throw std::invalid_argument(
        "Retrieval.input_size must be a positive multiple of 14");
  }
  if (!(gem_p >= 1.0)) throw std::invalid_argument("GeM p must be >= 1");
}

VitGemDescriptor::VitGemDescriptor(const VitDescriptorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  options.Check();
  impl_->options = options;
  impl_->device = torch::Device(options.device);
  if (options.num_threads > 0) at::set_num_threads(options.num_threads);
  const StateDict weights = ReadModelWeights(options.weights);
  // The architecture from the weights themselves.
  const at::Tensor* pos = weights.Find("pos_embed");
  if (pos == nullptr || pos->dim() != 3) {
    throw std::runtime_error("'" + options.weights +
                             "' is not a DINOv2 ViT checkpoint (no pos_embed)");
  }
  std::set<int> blocks;
  for (const auto& [name, tensor] : weights.tensors) {
    if (name.rfind("blocks.", 0) == 0) {
      blocks.insert(std::stoi(name.substr(7, name.find('.', 7) - 7)));
    }
  }
  DinoConfig config;
  config.embed_dim = static_cast<int>(pos->size(2));
  config.depth = static_cast<int>(blocks.size());
  config.num_heads = std::max(1, config.embed_dim / 64);  // DINOv2: 64 per head
  const int grid = static_cast<int>(std::lround(std::sqrt(pos->size(1) - 1)));
  config.img_size = grid * config.patch_size;
  impl_->vit = DinoVisionTransformer(config);
  StateDict complete = weights;
  if (complete.Find("mask_token") == nullptr) {
    // FiT3D-style files lack the (inference-unused) mask token.
    complete.tensors.emplace_back("mask_token",
                                  torch::zeros({1, config.embed_dim}));
  }
  LoadStateDictStrict(*impl_->vit, complete, options.weights);
  impl_->vit->eval();
  impl_->vit->to(impl_->device);
}

VitGemDescriptor::~VitGemDescriptor() = default;

cv::Mat VitGemDescriptor::Compute(const cv::Mat& bgr) {
  if (bgr.empty() || bgr.type() != CV_8UC3) {
    throw std::invalid_argument("dinov2_gem descriptor: expected 8-bit BGR");
  }
  torch::NoGradGuard no_grad;
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  const int s = impl_->options.input_size;
  const at::Tensor x = PreprocessForMatcher(rgb.ptr<uint8_t>(),
                                            rgb.rows,
                                            rgb.cols,
                                            s,
                                            s,
                                            /*normalize=*/true)
                           .to(impl_->device);
  const at::Tensor tokens = impl_->vit->forward(x).flatten(2);  // (1, C, N)
  const double p = impl_->options.gem_p;
  at::Tensor g = tokens.clamp_min(1e-6).pow(p).mean(-1).pow(1.0 / p)[0];
  g = (g / g.norm().clamp_min(1e-12))
          .to(torch::kCPU, torch::kFloat)
          .contiguous();
  return cv::Mat(1, static_cast<int>(g.numel()), CV_32F, g.data_ptr<float>())
      .clone();
}

}  // namespace l2m
