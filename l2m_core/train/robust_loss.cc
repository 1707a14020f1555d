#include "l2m_core/train/robust_loss.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace l2m {
namespace {

// Reductions and ops below follow robust_loss.py one for one (same ops, same
// order, same scalar types), so that float32 results are bit-identical.

at::Tensor EndPointError(const at::Tensor& flow, const at::Tensor& x2) {
  return at::linalg_vector_norm(flow.permute({0, 2, 3, 1}) - x2, 2, {-1});
}

at::Tensor CertaintyLoss(const at::Tensor& logits, const at::Tensor& prob) {
  return at::binary_cross_entropy_with_logits(
      logits.select(1, 0), prob, {}, {}, at::Reduction::Mean);
}

void CheckScale(const ScaleCorrespondences& c, int64_t batch) {
  const std::string where = "RobustLoss scale " + std::to_string(c.scale);
  if (c.scale <= 0) throw std::invalid_argument(where + ": scale must be > 0");
  if (!c.flow.defined() || c.flow.dim() != 4 || c.flow.size(1) != 2 ||
      c.flow.size(0) != batch) {
    throw std::invalid_argument(where + ": flow must be (B, 2, h, w)");
  }
  const auto expect_map = [&](const at::Tensor& t, const char* name) {
    if (!t.defined() || t.dim() != 4 || t.size(0) != batch ||
        t.size(2) != c.flow.size(2) || t.size(3) != c.flow.size(3)) {
      throw std::invalid_argument(where + ": " + name +
                                  " must be (B, C, h, w) like the flow");
    }
  };
  expect_map(c.certainty, "certainty");
  if (c.certainty.size(1) != 1) {
    throw std::invalid_argument(where + ": certainty must have 1 channel");
  }
  if (c.gm_cls.defined() != c.gm_certainty.defined()) {
    throw std::invalid_argument(where +
                                ": gm_cls and gm_certainty come together");
  }
  if (c.gm_cls.defined()) {
    expect_map(c.gm_cls, "gm_cls");
    expect_map(c.gm_certainty, "gm_certainty");
  }
}

}  // namespace

void RobustLossOptions::Check() const {
  if (!(ce_weight >= 0) || !std::isfinite(ce_weight)) {
    throw std::invalid_argument("RobustLossOptions: ce_weight must be >= 0");
  }
  if (!(c > 0) || !std::isfinite(c)) {
    throw std::invalid_argument("RobustLossOptions: c must be > 0");
  }
  if (!std::isfinite(alpha)) {
    throw std::invalid_argument("RobustLossOptions: alpha must be finite");
  }
  for (const auto& [scale, dist] : local_dist) {
    if (!(dist > 0)) {
      throw std::invalid_argument("RobustLossOptions: local_dist[" +
                                  std::to_string(scale) + "] must be > 0");
    }
  }
  for (const auto& [scale, weight] : scale_weights) {
    if (!(weight >= 0) || !std::isfinite(weight)) {
      throw std::invalid_argument("RobustLossOptions: scale_weights[" +
                                  std::to_string(scale) + "] must be >= 0");
    }
  }
  gt_warp.Check();
}

const at::Tensor& RobustLossResult::Term(const std::string& key) const {
  for (const auto& [name, value] : terms) {
    if (name == key) return value;
  }
  throw std::out_of_range("RobustLossResult: no term '" + key + "'");
}

const at::Tensor& RobustLossResult::Contribution(const std::string& key) const {
  for (const auto& [name, value] : contributions) {
    if (name == key) return value;
  }
  throw std::out_of_range("RobustLossResult: no contribution '" + key + "'");
}

at::Tensor ClassificationAnchors(int64_t n, at::Device device) {
  if (n <= 0) {
    throw std::invalid_argument("ClassificationAnchors: n must be > 0");
  }
  const at::Tensor lin = torch::linspace(
      -1 + 1.0 / n,
      1 - 1.0 / n,
      n,
      torch::TensorOptions().dtype(torch::kFloat32).device(device));
  return torch::stack(
             {lin.view({1, n}).expand({n, n}), lin.view({n, 1}).expand({n, n})},
             -1)
      .reshape({n * n, 2});
}

AnchorClassificationLoss ComputeAnchorClassificationLoss(
    const at::Tensor& x2,
    const at::Tensor& prob,
    const at::Tensor& gm_cls,
    const at::Tensor& gm_certainty) {
  const int64_t num_classes = gm_cls.size(1);
  const auto n = static_cast<int64_t>(std::lround(std::sqrt(num_classes)));
  if (n * n != num_classes) {
    throw std::invalid_argument("gm_cls: " + std::to_string(num_classes) +
                                " channels is not a square number of anchors");
  }
  AnchorClassificationLoss out;
  {
    // Nearest anchor to the GT warp (first index on ties), all cells.
    torch::NoGradGuard no_grad;
    const at::Tensor anchors =
        ClassificationAnchors(n, x2.device()).to(x2.scalar_type());
    const at::Tensor distance = at::linalg_vector_norm(
        anchors.view({1, num_classes, 1, 1, 2}) - x2.unsqueeze(1), 2, {-1});
    out.gt_cls = std::get<1>(distance.min(1));
  }
  at::Tensor cls_loss =
      at::cross_entropy_loss(gm_cls, out.gt_cls, {}, at::Reduction::None)
          .index({prob > 0.99});
  const at::Tensor certainty_loss = CertaintyLoss(gm_certainty, prob);
  if (!cls_loss.any().item<bool>()) {
    cls_loss = certainty_loss * 0.0;  // RoMa's guard: no supervised cell
  }
  out.certainty_loss = certainty_loss.mean();
  out.cls_loss = cls_loss.mean();
  return out;
}

RegressionLoss ComputeRegressionLoss(const at::Tensor& x2,
                                     const at::Tensor& prob,
                                     const at::Tensor& flow,
                                     const at::Tensor& certainty,
                                     int scale,
                                     double alpha,
                                     double c) {
  RegressionLoss out;
  out.epe = EndPointError(flow, x2);
  const at::Tensor ce_loss = CertaintyLoss(certainty, prob);
  // Barron's robust loss with scale cs and shape alpha, on the EPE.
  const double cs = c * scale;
  const at::Tensor x = out.epe.index({prob > 0.99});
  at::Tensor reg_loss =
      ((x / cs).pow(2) + 1).pow(alpha / 2) * std::pow(cs, alpha);
  if (!reg_loss.any().item<bool>()) {
    reg_loss = ce_loss * 0.0;  // RoMa's guard: no supervised cell
  }
  out.certainty_loss = ce_loss.mean();
  out.regression_loss = reg_loss.mean();
  return out;
}

RobustLossResult ComputeRobustLoss(
    const std::vector<ScaleCorrespondences>& corresps,
    const DepthPairBatch& batch,
    const RobustLossOptions& options) {
  options.Check();
  if (corresps.empty()) {
    throw std::invalid_argument("ComputeRobustLoss: no scales given");
  }
  if (!batch.depth_a.defined() || batch.depth_a.dim() != 3) {
    throw std::invalid_argument("ComputeRobustLoss: depth_a must be (B, H, W)");
  }
  const int64_t batch_size = batch.depth_a.size(0);
  for (const ScaleCorrespondences& c : corresps) CheckScale(c, batch_size);

  RobustLossResult result;
  at::Tensor prev_epe;
  for (const ScaleCorrespondences& c : corresps) {
    const int s = c.scale;
    const std::string suffix = "_" + std::to_string(s);
    const int64_t h = c.flow.size(2);
    const int64_t w = c.flow.size(3);
    const DenseGtWarp gt = GetGtWarp(batch.depth_a,
                                     batch.depth_b,
                                     batch.cam2_from_cam1,
                                     batch.calibration_a,
                                     batch.calibration_b,
                                     h,
                                     w,
                                     options.gt_warp);
    RobustLossScale record;
    record.scale = s;
    record.x2 =
        gt.warp.to(c.flow.scalar_type() == torch::kFloat64 ? torch::kFloat64
                                                           : torch::kFloat32);
    record.gt_prob = gt.prob;
    at::Tensor prob = gt.prob;

    // Locality: supervise only where the coarser scale was already close.
    if (options.local_largest_scale >= s) {
      if (!prev_epe.defined()) {
        throw std::invalid_argument(
            "ComputeRobustLoss: scale " + std::to_string(s) +
            " needs a coarser scale before it (local_largest_scale " +
            std::to_string(options.local_largest_scale) + ")");
      }
      const auto dist = options.local_dist.find(s);
      if (dist == options.local_dist.end()) {
        throw std::invalid_argument(
            "ComputeRobustLoss: no local_dist for "
            "scale " +
            std::to_string(s));
      }
      // F.interpolate(mode="nearest-exact", size=...) with no scale given:
      // the scale is float32(in / out), as the manifest notes for its
      // exact-integer ties. The op itself, since LibTorch 1.13's functional
      // interpolate warns about align_corners on every nearest-exact call.
      record.prev_epe_up =
          at::_upsample_nearest_exact2d(
              prev_epe.unsqueeze(1), {h, w}, c10::nullopt, c10::nullopt)
              .select(1, 0);
      prob = prob * (record.prev_epe_up < (2.0 / 512) * (dist->second * s));
    }
    record.prob = prob;

    const auto weight_it = options.scale_weights.find(s);
    const double scale_weight =
        weight_it == options.scale_weights.end() ? 1.0 : weight_it->second;
    const auto accumulate = [&](const at::Tensor& loss) {
      result.total = result.total.defined() ? result.total + scale_weight * loss
                                            : scale_weight * loss + 0.0;
    };

    if (c.gm_cls.defined()) {
      const AnchorClassificationLoss gm = ComputeAnchorClassificationLoss(
          record.x2, prob, c.gm_cls, c.gm_certainty);
      record.gt_cls = gm.gt_cls;
      result.terms.emplace_back("gm_certainty_loss" + suffix,
                                gm.certainty_loss.detach());
      result.terms.emplace_back("gm_cls_loss" + suffix, gm.cls_loss.detach());
      const at::Tensor gm_loss =
          options.ce_weight * gm.certainty_loss + gm.cls_loss;
      result.contributions.emplace_back("gm" + suffix, gm_loss.detach());
      accumulate(gm_loss);
    }

    const RegressionLoss reg = ComputeRegressionLoss(
        record.x2, prob, c.flow, c.certainty, s, options.alpha, options.c);
    record.epe = reg.epe.detach();
    if (s == 1) {
      // Logged, not part of the loss: fraction within half a pixel at 512.
      torch::NoGradGuard no_grad;
      result.terms.emplace_back(
          "train_pck_05",
          (record.epe.index({prob > 0.99}) < 0.5 * (2.0 / 512))
              .to(torch::kFloat32)
              .mean());
    }
    result.terms.emplace_back("delta_certainty_loss" + suffix,
                              reg.certainty_loss.detach());
    result.terms.emplace_back("delta_regression_loss" + suffix,
                              reg.regression_loss.detach());
    const at::Tensor reg_loss =
        options.ce_weight * reg.certainty_loss + reg.regression_loss;
    result.contributions.emplace_back("reg" + suffix, reg_loss.detach());
    accumulate(reg_loss);

    prev_epe = record.epe;
    result.scales.push_back(std::move(record));
  }
  return result;
}

}  // namespace l2m
