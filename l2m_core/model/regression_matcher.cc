#include "l2m_core/model/regression_matcher.h"

#include <torch/torch.h>

#ifdef L2M_HAVE_CUDA_KERNELS  // LibTorch with CUDA
#include "l2m_core/model/finalize_cuda.h"

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <optional>
#include <stdexcept>

namespace l2m {
namespace {

torch::Tensor Resize(const torch::Tensor& t, int64_t h, int64_t w) {
  namespace F = torch::nn::functional;
  return F::interpolate(t,
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{h, w})
                            .mode(torch::kBilinear)
                            .align_corners(false));
}

void CheckPair(const torch::Tensor& a,
               const torch::Tensor& b,
               const char* what) {
  if (!a.defined() || !b.defined() || a.dim() != 4 || a.size(1) != 3 ||
      a.sizes() != b.sizes()) {
    throw std::invalid_argument(
        std::string("RegressionMatcher: ") + what +
        " images must be (B, 3, H, W) tensors of equal size");
  }
}

}  // namespace

CnnAndDinov2Impl::CnnAndDinov2Impl(const MatcherConfig& config) {
  cnn_ = register_module("cnn", Vgg19(config.vgg));
  if (config.coarse_encoder == CoarseEncoder::kDinov2) {
    dino_ = DinoVisionTransformer(config.dino);
  }
}

FeaturePyramid CnnAndDinov2Impl::forward(const torch::Tensor& x,
                                         bool upsample) {
  FeaturePyramid pyramid;
  {
    ScopedStage stage(upsample ? "p2.vgg" : "p1.vgg");
    pyramid = cnn_(x);
  }
  if (!dino_) {
    // CNN coarse encoder: its stride-16 map is the coarse feature; the
    // upsample pass has no use for it.
    if (upsample) pyramid.erase(16);
    return pyramid;
  }
  if (!upsample) {
    ScopedStage stage("p1.dinov2");
    pyramid[16] = dino_(x);
  }
  return pyramid;
}

void CnnAndDinov2Impl::to(torch::Device device,
                          torch::Dtype dtype,
                          bool non_blocking) {
  torch::nn::Module::to(device, dtype, non_blocking);
  if (dino_) dino_->to(device, dtype, non_blocking);
}

void CnnAndDinov2Impl::to(torch::Dtype dtype, bool non_blocking) {
  torch::nn::Module::to(dtype, non_blocking);
  if (dino_) dino_->to(dtype, non_blocking);
}

void CnnAndDinov2Impl::to(torch::Device device, bool non_blocking) {
  torch::nn::Module::to(device, non_blocking);
  if (dino_) dino_->to(device, non_blocking);
}

void CnnAndDinov2Impl::train(bool on) {
  torch::nn::Module::train(on);
  if (dino_) dino_->train(on);
}

RegressionMatcherImpl::RegressionMatcherImpl(const MatcherConfig& config)
    : config_(config) {
  config_.Check();
  encoder_ = register_module("encoder", CnnAndDinov2(config_));
  decoder_ = register_module("decoder", Decoder(config_));
}

void RegressionMatcherImpl::OptimizeForInference(bool channels_last) {
  eval();
  encoder_->cnn()->FoldBatchNorm();
  decoder_->FoldBatchNorm();
  if (channels_last) {
    ConvertConvWeightsToChannelsLast(*encoder_->cnn());
    ConvertConvWeightsToChannelsLast(*decoder_);
  }
}

Correspondences RegressionMatcherImpl::Forward(const torch::Tensor& im_A,
                                               const torch::Tensor& im_B,
                                               bool upsample,
                                               const ScaleEstimate* init,
                                               double scale_factor,
                                               ModelTrace* trace,
                                               const FeaturePyramid* given) {
  FeaturePyramid pyramid =
      given != nullptr
          ? *given
          : encoder_->forward(torch::cat({im_A, im_B}, 0), upsample);
  if (trace != nullptr) {
    for (const auto& [s, f] : pyramid) {
      trace->Put(s == 16 ? "enc.dino16" : "enc.vgg" + std::to_string(s), f);
    }
  }
  // Symmetric: the batch [A, B] is the query of [A→B, B→A]. In inference an
  // empty support pyramid tells the decoder to swap halves after projecting;
  // in training the support is the swapped batch, projected on its own as in
  // the reference, so the projections' BatchNorms update their running
  // statistics twice a step, as there.
  FeaturePyramid f_q, f_s;
  for (const auto& [s, f] : pyramid) {
    if (config_.symmetric) {
      f_q[s] = f;
      if (is_training()) {
        auto halves = f.chunk(2, 0);
        f_s[s] = torch::cat({halves[1], halves[0]}, 0);
      }
    } else {
      auto halves = f.chunk(2, 0);
      f_q[s] = halves[0];
      f_s[s] = halves[1];
    }
  }
  return decoder_->forward(f_q, f_s, upsample, init, scale_factor, trace);
}

MatchResult RegressionMatcherImpl::MatchBatched(
    const torch::Tensor& im_A_coarse,
    const torch::Tensor& im_B_coarse,
    const torch::Tensor& im_A_up,
    const torch::Tensor& im_B_up,
    ModelTrace* trace) {
  torch::NoGradGuard no_grad;
  CheckPair(im_A_coarse, im_B_coarse, "coarse");
  // Scale factors follow the actual input sizes (= the config's in normal use).
  MatcherConfig sizes = config_;
  sizes.coarse_h = im_A_coarse.size(2);
  sizes.coarse_w = im_A_coarse.size(3);
  if (config_.upsample_preds) {
    CheckPair(im_A_up, im_B_up, "upsample");
    sizes.upsample_h = im_A_up.size(2);
    sizes.upsample_w = im_A_up.size(3);
  }
  const std::string prefix = trace != nullptr ? trace->prefix : "";
  auto set_prefix = [&](const char* p) {
    if (trace != nullptr) trace->prefix = prefix + p;
  };

  // The upsample pass's encoder (VGG at the fine size) does not depend on
  // the coarse pass. On CUDA it runs on a side stream once the coarse
  // encoder is done, overlapping the coarse decoder's GP and classifier,
  // whose small, latency-bound kernels leave most of the GPU idle.
  set_prefix("p1.");
  FeaturePyramid coarse_pyramid =
      encoder_->forward(torch::cat({im_A_coarse, im_B_coarse}, 0), false);
  FeaturePyramid fine_pyramid;  // empty: Forward encodes
#ifdef L2M_HAVE_CUDA_KERNELS
  std::optional<at::cuda::CUDAEvent> fine_done;
  if (config_.upsample_preds && im_A_up.is_cuda() && trace == nullptr) {
    const c10::cuda::CUDAStream main = c10::cuda::getCurrentCUDAStream();
    const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAEvent coarse_encoded;
    coarse_encoded.record(main);
    coarse_encoded.block(side);
    {
      const c10::cuda::CUDAStreamGuard on_side(side);
      fine_pyramid = encoder_->forward(torch::cat({im_A_up, im_B_up}, 0),
                                       /*upsample=*/true);
      fine_done.emplace();
      fine_done->record(side);
    }
    // Allocated on the side stream, used and freed on the main one.
    for (const auto& [s, f] : fine_pyramid) {
      c10::cuda::CUDACachingAllocator::recordStream(f.storage().data_ptr(),
                                                    main);
    }
  }
#endif

  Correspondences coarse = Forward(im_A_coarse,
                                   im_B_coarse,
                                   /*upsample=*/false,
                                   nullptr,
                                   sizes.ScaleFactorCoarse(),
                                   trace,
                                   &coarse_pyramid);
  coarse_pyramid.clear();
  int64_t hs = sizes.coarse_h, ws = sizes.coarse_w;
  if (config_.upsample_preds) {
    hs = sizes.upsample_h;
    ws = sizes.upsample_w;
  }
  // Low-resolution certainty logits are trusted where negative: the
  // certainty is attenuated by 0.5·low where low < 0.
  torch::Tensor low;
  if (config_.attenuate_cert) {
    low = Resize(coarse.at(config_.gp_scale).certainty, hs, ws);
  }
  ScaleEstimate finest = coarse.at(1);
  if (config_.upsample_preds) {
    set_prefix("p2.");
#ifdef L2M_HAVE_CUDA_KERNELS
    if (fine_done) fine_done->block(c10::cuda::getCurrentCUDAStream());
#endif
    Correspondences fine =
        Forward(im_A_up,
                im_B_up,
                /*upsample=*/true,
                &finest,
                sizes.ScaleFactorUpsample(),
                trace,
                fine_pyramid.empty() ? nullptr : &fine_pyramid);
    finest = fine.at(1);
  }
  set_prefix("final.");
  ScopedStage final_stage("final");
#ifdef L2M_HAVE_CUDA_KERNELS
  // On CUDA the symmetric result in one kernel (bit-equal to the ops below,
  // which ran ~17 kernels over the upsample-size maps).
  if (config_.symmetric && trace == nullptr && finest.flow.is_cuda() &&
      finest.flow.scalar_type() == torch::kFloat &&
      finest.certainty.scalar_type() == torch::kFloat &&
      finest.flow.size(2) == hs && finest.flow.size(3) == ws &&
      (!low.defined() || low.scalar_type() == torch::kFloat)) {
    const auto opts = finest.flow.options();
    const int64_t B = finest.flow.size(0) / 2;
    MatchResult result;
    result.warp = torch::empty({B, hs, 2 * ws, 4}, opts);
    result.certainty = torch::empty({B, hs, 2 * ws}, opts);
    internal::FinalizeSymmetric(finest.flow,
                                finest.certainty,
                                low,
                                IdentityAxis(ws, opts),
                                IdentityAxis(hs, opts),
                                result.warp,
                                result.certainty);
    return result;
  }
#endif
  torch::Tensor attenuation;
  if (low.defined()) attenuation = 0.5 * low * (low < 0);
  if (attenuation.defined()) TracePut(trace, "attenuation", attenuation);
  if (trace != nullptr) trace->prefix = prefix;

  torch::Tensor flow = finest.flow;
  torch::Tensor certainty =
      attenuation.defined() ? finest.certainty - attenuation : finest.certainty;
  if (flow.size(2) != hs || flow.size(3) != ws) {
    flow = Resize(flow, hs, ws);
    certainty = Resize(certainty, hs, ws);
  }
  flow = flow.permute({0, 2, 3, 1});  // (N, hs, ws, 2)
  const int64_t N = flow.size(0);
  auto coords = IdentityGrid(hs, ws, flow.options())
                    .permute({0, 2, 3, 1})
                    .expand({N, hs, ws, 2});
  certainty = certainty.sigmoid();
  auto wrong = (flow.abs() > 1).sum(-1) > 0;  // (N, hs, ws)
  certainty = certainty.masked_fill(wrong.unsqueeze(1), 0);
  flow = flow.clamp(-1, 1);

  MatchResult result;
  if (config_.symmetric) {
    auto flows = flow.chunk(2, 0);  // A→B, B→A
    auto grids = coords.chunk(2, 0);
    auto q_warp = torch::cat({grids[0], flows[0]}, -1);
    auto s_warp = torch::cat({flows[1], grids[1]}, -1);
    result.warp = torch::cat({q_warp, s_warp}, 2);
    auto certs = certainty.chunk(2, 0);
    result.certainty = torch::cat({certs[0], certs[1]}, 3).select(1, 0);
  } else {
    result.warp = torch::cat({coords, flow}, -1);
    result.certainty = certainty.select(1, 0);
  }
  return result;
}

MatchResult RegressionMatcherImpl::Match(const torch::Tensor& im_A_coarse,
                                         const torch::Tensor& im_B_coarse,
                                         const torch::Tensor& im_A_up,
                                         const torch::Tensor& im_B_up,
                                         ModelTrace* trace) {
  if (im_A_coarse.dim() != 4 || im_A_coarse.size(0) != 1) {
    throw std::invalid_argument(
        "RegressionMatcher::Match takes one pair (1, 3, H, W); use "
        "MatchBatched");
  }
  MatchResult r =
      MatchBatched(im_A_coarse, im_B_coarse, im_A_up, im_B_up, trace);
  r.warp = r.warp[0];
  r.certainty = r.certainty[0];
  return r;
}

}  // namespace l2m
