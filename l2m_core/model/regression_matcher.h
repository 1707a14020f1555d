#pragma once

#include "l2m_core/model/config.h"
#include "l2m_core/model/decoder.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/vgg.h"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

// The L2M++ / RoMa matcher (RegressionMatcher + match()), from preprocessed
// image tensors to the dense warp and certainty. Image decoding and PIL-bicubic
// resizing happen upstream.

namespace l2m {

// Fine VGG19-BN pyramid (scales 1..8, key prefix `cnn.`) + coarse DINOv2
// features (scale 16). The ViT is held outside the module tree, as in the
// reference: it is not part of the matcher state dict and loads from its own
// checkpoint through dino(). With CoarseEncoder::kCnn there is no ViT: the
// CNN's stride-16 map is scale 16 and everything is in the state dict.
class CnnAndDinov2Impl : public torch::nn::Module {
 public:
  explicit CnnAndDinov2Impl(const MatcherConfig& config);

  // x (N, 3, H, W). Without `upsample` the pyramid also holds 16: DINOv2 patch
  // tokens (N, C, H/14, W/14); the upsample pass uses VGG only.
  FeaturePyramid forward(const torch::Tensor& x, bool upsample);

  // Empty (null holder) with the CNN coarse encoder.
  DinoVisionTransformer& dino() { return dino_; }
  Vgg19& cnn() { return cnn_; }

  // Keep the ViT on the same device / mode as the rest.
  void to(torch::Device device,
          torch::Dtype dtype,
          bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;
  void train(bool on = true) override;

 private:
  Vgg19 cnn_{nullptr};
  DinoVisionTransformer dino_{nullptr};
};
TORCH_MODULE(CnnAndDinov2);

struct MatchResult {
  // Symmetric: (H, 2W, 4), left half [x_A, y_A, x_B, y_B] for A's pixels (A→B),
  // right half the same layout for B's pixels (B→A). Non-symmetric: (H, W, 4).
  // Normalised coords, align_corners=False (pixel = W/2·(x+1), COLMAP
  // convention). Batched forms have a leading B.
  torch::Tensor warp;
  // (H, 2W) (symmetric) or (H, W), in [0, 1]; 0 where the unclamped warp left
  // [−1, 1].
  torch::Tensor certainty;
};

class RegressionMatcherImpl : public torch::nn::Module {
 public:
  explicit RegressionMatcherImpl(const MatcherConfig& config);

  // One pair. Inputs are (1, 3, H, W) float tensors, already resized (and
  // normalised if the config says so): *_coarse at the coarse resolution
  // (multiple of 14), *_up at the upsample resolution (ignored, may be
  // undefined, when upsample_preds is off). The output is at the upsample
  // resolution (else the coarse one). Runs under NoGradGuard.
  MatchResult Match(const torch::Tensor& im_A_coarse,
                    const torch::Tensor& im_B_coarse,
                    const torch::Tensor& im_A_up,
                    const torch::Tensor& im_B_up,
                    ModelTrace* trace = nullptr);

  // B pairs of equal size: inputs (B, 3, H, W); warp (B, H, 2W, 4), certainty
  // (B, H, 2W).
  MatchResult MatchBatched(const torch::Tensor& im_A_coarse,
                           const torch::Tensor& im_B_coarse,
                           const torch::Tensor& im_A_up,
                           const torch::Tensor& im_B_up,
                           ModelTrace* trace = nullptr);

  // One pass of encoder + decoder (RegressionMatcher.forward /
  // forward_symmetric). In symmetric mode the batch is [A→B, B→A] (2B), else
  // [A→B] (B). `pyramid`, when given, is the encoder's output for
  // cat(im_A, im_B) computed beforehand (MatchBatched overlaps the
  // upsample pass's encoder with the coarse pass).
  Correspondences Forward(const torch::Tensor& im_A,
                          const torch::Tensor& im_B,
                          bool upsample,
                          const ScaleEstimate* init,
                          double scale_factor,
                          ModelTrace* trace = nullptr,
                          const FeaturePyramid* pyramid = nullptr);

  // Inference speed-ups that keep the fp32 results within rounding: fold the
  // VGG and refiner BatchNorms into their convs and, on CUDA, keep conv
  // weights and activations channels-last. Call after loading weights and
  // moving to the device; the state dict no longer holds the checkpoint's
  // values afterwards.
  void OptimizeForInference(bool channels_last);

  const MatcherConfig& config() const { return config_; }
  CnnAndDinov2& encoder() { return encoder_; }
  Decoder& decoder() { return decoder_; }
  DinoVisionTransformer& dino() { return encoder_->dino(); }

 private:
  MatcherConfig config_;
  CnnAndDinov2 encoder_{nullptr};
  Decoder decoder_{nullptr};
};
TORCH_MODULE(RegressionMatcher);

}  // namespace l2m
