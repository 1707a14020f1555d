#include "l2m_core/model/decoder.h"

#include "l2m_core/model/conv_refiner.h"
#include "l2m_core/model/gp.h"
#include "l2m_core/model/model_util.h"

#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/bias_activation_cuda.h"
#endif

#include <torch/torch.h>

#include <string>

namespace l2m {
namespace {

torch::Tensor Resize(const torch::Tensor& t, const std::vector<int64_t>& size) {
  namespace F = torch::nn::functional;
  return F::interpolate(t,
                        F::InterpolateFuncOptions()
                            .size(size)
                            .mode(torch::kBilinear)
                            .align_corners(false));
}

}  // namespace

DecoderImpl::DecoderImpl(const MatcherConfig& config) : config_(config) {
  namespace nn = torch::nn;
  embedding_decoder_ = register_module("embedding_decoder",
                                       TransformerDecoder(config.transformer));
  using Named =
      std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>>;
  gps_ = register_module("gps",
                         nn::ModuleDict(Named{{std::to_string(config.gp_scale),
                                               Gp(config.gp).ptr()}}));
  Named proj, refiners;
  for (int s : config.scales) {
    const ProjConfig& p = config.proj.at(s);
    proj.emplace_back(
        std::to_string(s),
        nn::Sequential(nn::Conv2d(nn::Conv2dOptions(p.in_dim, p.out_dim, 1)),
                       nn::BatchNorm2d(p.out_dim))
            .ptr());
    refiners.emplace_back(std::to_string(s),
                          ConvRefiner(config.refiner.at(s)).ptr());
  }
  proj_ = register_module("proj", nn::ModuleDict(proj));
  conv_refiner_ = register_module("conv_refiner", nn::ModuleDict(refiners));
}

void DecoderImpl::FoldBatchNorm() {
  for (const auto& item : conv_refiner_->items()) {
    item.second->as<ConvRefinerImpl>()->FoldBatchNorm();
  }
  if (!proj_bn_folded_) {
    for (const auto& item : proj_->items()) {
      auto& proj = *item.second->as<torch::nn::SequentialImpl>();
      FoldBatchNormIntoConv(*proj[0]->as<torch::nn::Conv2dImpl>(),
                            *proj[1]->as<torch::nn::BatchNorm2dImpl>());
    }
    proj_bn_folded_ = true;
  }
}

Correspondences DecoderImpl::forward(const FeaturePyramid& f_q,
                                     const FeaturePyramid& f_s,
                                     bool upsample,
                                     const ScaleEstimate* init,
                                     double scale_factor,
                                     ModelTrace* trace) {
  std::vector<int> scales;
  for (int s : config_.scales) {
    if (!upsample || s != config_.gp_scale) scales.push_back(s);
  }
  const torch::Tensor& f1 = f_q.at(1);
  const int64_t B = f1.size(0), h = f1.size(2), w = f1.size(3);
  auto size_of = [&](int s) {
    const torch::Tensor& t = f_q.at(s);
    return std::vector<int64_t>{t.size(2), t.size(3)};
  };
  torch::Tensor flow, certainty;
  const std::vector<int64_t> first_size = size_of(scales.front());
  if (upsample) {
    TORCH_CHECK(init != nullptr,
                "Decoder: the upsample pass needs an initial estimate");
    flow = Resize(init->flow, first_size);
    certainty = Resize(init->certainty, first_size);
  } else {
    flow = IdentityGrid(
               first_size[0], first_size[1], f1.options().dtype(torch::kFloat))
               .expand({B, 2, first_size[0], first_size[1]});
    certainty = torch::zeros({B, 1, first_size[0], first_size[1]},
                             f1.options().dtype(torch::kFloat));
  }

  Correspondences out;
  for (size_t i = 0; i < scales.size(); ++i) {
    const int s = scales[i];
    const std::string key = std::to_string(s);
    const std::string name = "s" + key + ".";
    const std::string stage = (upsample ? "p2." : "p1.") + name;
    auto& proj = *proj_[key]->as<torch::nn::SequentialImpl>();
    torch::Tensor fq, fs;
    // The symmetric batch cat(A, B) is its own support with the halves
    // swapped: the refiners read fq at an offset of B/2 images instead of
    // a swapped copy (0.2 ms a pair at 8 pairs); the GP takes the copy.
    int64_t support_offset = 0;
    {
      ScopedStage timed(stage + "proj");
      auto project = [&](const torch::Tensor& f) {
        if (!proj_bn_folded_) return proj.forward(f);
        auto* conv = proj[0]->as<torch::nn::Conv2dImpl>();
#ifdef L2M_HAVE_CUDA_KERNELS
        // Inference on CUDA in fp16/bf16: the 1×1 conv without its bias,
        // then the bias added as autocast's conv adds it (cast to the
        // dtype, summed in float32, rounded) by l2m's vectorised pass
        // instead of LibTorch's strided broadcast add over channels-last.
        const at::ScalarType compute = CudaComputeDtype(torch::kFloat);
        if (f.is_cuda() && !is_training() && !torch::GradMode::is_enabled() &&
            compute != torch::kFloat && conv->bias.defined() &&
            conv->weight.size(2) == 1 && conv->weight.size(3) == 1) {
          torch::Tensor y = torch::conv2d(f, conv->weight);
          if (y.scalar_type() == compute &&
              internal::BiasReluInplaceSupported(y)) {
            internal::BiasAddInplace(y, conv->bias.to(compute));
            return y;
          }
          return y.add_(conv->bias.to(y.scalar_type()).view({1, -1, 1, 1}));
        }
#endif
        return conv->forward(f);
      };
      fq = project(f_q.at(s));
      if (f_s.empty()) {
        fs = fq;
        support_offset = fq.size(0) / 2;
      } else {
        fs = project(f_s.at(s));
      }
    }
    TracePut(trace, name + "proj_q", fq);

    if (s == config_.gp_scale) {
      torch::Tensor gp_posterior;
      {
        ScopedStage timed(stage + "gp");
        const int64_t half = support_offset;
        const torch::Tensor support =
            half == 0 ? fs
                      : torch::cat({fq.narrow(0, half, fq.size(0) - half),
                                    fq.narrow(0, 0, half)});
        gp_posterior = gps_[key]->as<GpImpl>()->forward(fq, support);
      }
      TracePut(trace, name + "gp_posterior", gp_posterior);
      ScopedStage timed(stage + "transformer_decoder");
      CoarseMatch coarse = embedding_decoder_->forward(gp_posterior, fq);
      TracePut(trace, name + "gm_cls", coarse.cls);
      TracePut(trace, name + "gm_certainty", coarse.certainty);
      flow = ClsToFlowRefine(coarse.cls).detach();
      certainty = coarse.certainty;
      out[s].gm_cls = coarse.cls;
      out[s].gm_certainty = coarse.certainty;
    }

    TracePut(trace, name + "flow_in", flow);
    ScopedStage timed(stage + "refiner");
    Refinement r = conv_refiner_[key]->as<ConvRefinerImpl>()->forward(
        fq, fs, flow, scale_factor, support_offset);
    TracePut(trace, name + "delta_flow", r.delta_flow);
    TracePut(trace, name + "delta_certainty", r.delta_certainty);
    auto d = r.delta_flow.to(torch::kFloat);
    auto displacement =
        s * torch::stack({d.select(1, 0) / (config_.refine_init * w),
                          d.select(1, 1) / (config_.refine_init * h)},
                         1);
    flow = flow + displacement;
    certainty = certainty + r.delta_certainty;
    out[s].flow = flow;
    out[s].certainty = certainty;
    TracePut(trace, name + "flow", flow);
    TracePut(trace, name + "certainty", certainty);

    if (i + 1 < scales.size()) {
      const std::vector<int64_t> next = size_of(scales[i + 1]);
      flow = Resize(flow, next).detach();
      certainty = Resize(certainty, next).detach();
    }
  }
  return out;
}

}  // namespace l2m
