#pragma once

#include "l2m_core/geometry/gt_warp.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

// RoMa's training loss (romatch/losses/robust_loss.py, RobustLosses) in
// LibTorch: at the coarsest scale, classification of the GT warp into the
// n x n anchors (cross-entropy) + certainty BCE; at every scale, a robust
// (Barron) regression loss on the end-point error of the refined flow + a
// certainty BCE, supervised only where the previous (coarser) scale was
// already close (locality masks). Ground truth comes from GetGtWarp at each
// scale's own resolution. Computed in the inputs' dtype (float32 in
// training: the GT warp is float64 and then cast, as the reference does);
// run it outside autocast.

namespace l2m {

// What the decoder emits at one scale in training mode (RoMa's
// corresps[scale]). Normalised coordinates: align_corners=False, x first.
struct ScaleCorrespondences {
  int scale = 1;            // 16, 8, 4, 2, 1: the key of RoMa's dict
  at::Tensor flow;          // (B, 2, h, w) warp of A's grid into B
  at::Tensor certainty;     // (B, 1, h, w) logits
  at::Tensor gm_cls;        // (B, n², h, w) anchor logits, or undefined
  at::Tensor gm_certainty;  // (B, 1, h, w) logits; defined iff gm_cls is
};

// Ground truth of a training pair, as RoMa's MegaDepth batch.
struct DepthPairBatch {
  at::Tensor depth_a;         // im_A_depth (B, H_A, W_A), 0 = unknown
  at::Tensor depth_b;         // im_B_depth (B, H_B, W_B)
  at::Tensor calibration_a;   // K1 (B, 3, 3) for depth_a's size
  at::Tensor calibration_b;   // K2 (B, 3, 3) for depth_b's size
  at::Tensor cam2_from_cam1;  // T_1to2 (B, 4, 4)
};

struct RobustLossOptions {
  // RoMa's experiments/train_roma_outdoor.py (GIM-RoMa uses the same); the
  // class defaults there differ (alpha 1, c 1e-3, a scalar local_dist).
  double ce_weight = 0.01;  // weight of the certainty BCE terms
  // Locality: at scale s ≤ local_largest_scale, a cell is supervised only
  // where the previous scale's EPE < (2 / 512) · local_dist[s] · s.
  std::map<int, double> local_dist = {{1, 4}, {2, 4}, {4, 8}, {8, 8}};
  int local_largest_scale = 8;
  // Barron loss cs^α · ((x / cs)² + 1)^(α / 2) with cs = c · scale.
  double alpha = 0.5;
  double c = 1e-4;
  // Weight of each scale's loss in the total (RoMa: all 1); absent = 1.
  std::map<int, double> scale_weights;
  // RoMa's forward() calls get_gt_warp with its defaults whatever the loss
  // was constructed with (bilinear, 0.05, +1e-4).
  GtWarpOptions gt_warp;

  void Check() const;
};

// One scale's ground truth and masks (detached), for logs and tests.
struct RobustLossScale {
  int scale = 0;
  at::Tensor x2;           // (B, h, w, 2) GT warp in the loss dtype
  at::Tensor gt_prob;      // (B, h, w) GT validity
  at::Tensor prob;         // (B, h, w) gt_prob × locality mask
  at::Tensor prev_epe_up;  // (B, h, w) previous EPE, nearest-exact; or undef.
  at::Tensor epe;          // (B, h, w) ‖flow − x2‖
  at::Tensor gt_cls;       // (B, h, w) int64 nearest anchor; or undefined
};

struct RobustLossResult {
  at::Tensor total;  // 0-dim, differentiable
  // Detached per-term values under RoMa's wandb keys, in its logging order
  // (gm_certainty_loss_16, gm_cls_loss_16, delta_certainty_loss_16,
  // delta_regression_loss_16, ..., train_pck_05, ..._1).
  std::vector<std::pair<std::string, at::Tensor>> terms;
  // Each scale's share of the total before its scale weight: "gm_<s>" =
  // ce_weight · gm_certainty + gm_cls, "reg_<s>" = ce_weight ·
  // delta_certainty + delta_regression.
  std::vector<std::pair<std::string, at::Tensor>> contributions;
  std::vector<RobustLossScale> scales;

  // Throws std::out_of_range naming the key when absent.
  const at::Tensor& Term(const std::string& key) const;
  const at::Tensor& Contribution(const std::string& key) const;
};

// The scale terms on their own (RoMa's gm_cls_loss / regression_loss).
// `x2` (B, h, w, 2) and `prob` (B, h, w) are the supervision; cells with
// prob > 0.99 enter the classification / regression means, all cells the
// BCE means. Where no cell is supervised the masked term is BCE · 0 (RoMa's
// guard), so the prediction gets no gradient.
struct AnchorClassificationLoss {
  at::Tensor certainty_loss;  // BCE(gm_certainty, prob)
  at::Tensor cls_loss;        // mean CE(gm_cls, nearest anchor)
  at::Tensor gt_cls;          // (B, h, w) int64 nearest anchor (first on ties)
};
AnchorClassificationLoss ComputeAnchorClassificationLoss(
    const at::Tensor& x2,
    const at::Tensor& prob,
    const at::Tensor& gm_cls,
    const at::Tensor& gm_certainty);

struct RegressionLoss {
  at::Tensor certainty_loss;   // BCE(certainty, prob)
  at::Tensor regression_loss;  // mean Barron loss of the EPE
  at::Tensor epe;              // (B, h, w), differentiable
};
RegressionLoss ComputeRegressionLoss(const at::Tensor& x2,
                                     const at::Tensor& prob,
                                     const at::Tensor& flow,
                                     const at::Tensor& certainty,
                                     int scale,
                                     double alpha,
                                     double c);

// The anchors of an n x n classification head: (n², 2) float32, anchor k at
// (x, y) = (lin[k % n], lin[k / n]), lin = linspace(−1 + 1/n, 1 − 1/n, n).
at::Tensor ClassificationAnchors(int64_t n, at::Device device);

// RobustLosses.forward: `corresps` from coarse to fine (the locality mask of
// a scale uses the EPE of the one before it).
RobustLossResult ComputeRobustLoss(
    const std::vector<ScaleCorrespondences>& corresps,
    const DepthPairBatch& batch,
    const RobustLossOptions& options = {});

}  // namespace l2m
