#pragma once

#include "l2m_core/model/config.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/transformer_decoder.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/pimpl.h>

#include <map>

// RoMa's coarse-to-fine Decoder: at scale 16 the GP + transformer classifier
// give the initial warp and certainty; every scale's ConvRefiner then adds
//   flow += s·(dx/(4·W1), dy/(4·H1)),  certainty += delta (logits),
// with bilinear upsampling between scales. Keys: embedding_decoder.*, gps.16.*,
// proj.{s}.{0,1}.*, conv_refiner.{s}.*.

namespace l2m {

struct ScaleEstimate {
  torch::Tensor flow;       // (B, 2, h, w) normalised coords, not clamped
  torch::Tensor certainty;  // (B, 1, h, w) accumulated logit
  // At the GP scale only (else undefined): the transformer's anchor logits
  // (B, cls_res², h, w) and certainty logit (B, 1, h, w), which the training
  // loss supervises (RoMa's gm_cls / gm_certainty).
  torch::Tensor gm_cls;
  torch::Tensor gm_certainty;
};

using Correspondences = std::map<int, ScaleEstimate>;

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const MatcherConfig& config);

  // f_q, f_s: query and support pyramids (same batch size). An empty f_s
  // means the symmetric batch [A→B, B→A]: the support of each sample is the
  // query of the other half, so only f_q is projected and each sample reads
  // its support from the other half (the projection is per pixel, and its
  // BatchNorm's batch statistics are the same over a permuted batch): the
  // refiners at an offset of B/2 images, the GP from a swapped copy, never
  // a swapped copy of the full-resolution features.
  // Without `upsample`
  // all scales run and the warp starts from the classifier at scale 16; with
  // `upsample` only the VGG scales (8..1) run, starting from `init` (any size,
  // bilinearly resized to the scale-8 size). As RoMa's Decoder(detach=True),
  // the flow entering each refiner and the certainty carried to the next
  // scale are detached: each scale learns its own residual.
  Correspondences forward(const FeaturePyramid& f_q,
                          const FeaturePyramid& f_s,
                          bool upsample,
                          const ScaleEstimate* init,
                          double scale_factor,
                          ModelTrace* trace = nullptr);

  // Inference only, after loading: folds the BatchNorms of the refiners and
  // of the projections into the convs before them.
  void FoldBatchNorm();

 private:
  MatcherConfig config_;
  bool proj_bn_folded_ = false;
  TransformerDecoder embedding_decoder_{nullptr};
  torch::nn::ModuleDict gps_{nullptr};
  torch::nn::ModuleDict proj_{nullptr};
  torch::nn::ModuleDict conv_refiner_{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace l2m
