#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// The symmetric matcher's last step in one pass (RegressionMatcher::
// MatchBatched): from the finest flow (2B, 2, h, w) and certainty logits
// (2B, 1, h, w) float32 of the batch [A→B, B→A], and optionally the
// resized coarse logits `low` (2B, 1, h, w) whose negative part attenuates
// the certainty (certainty − 0.5·low·(low < 0)):
//   warp (B, h, 2w, 4): [x_A, y_A, x_B, y_B] — the A half from the grid
//     (xs, ys) and the clamped A→B flow, the B half from the clamped B→A
//     flow and the grid;
//   certainty (B, h, 2w): sigmoid of the logits, 0 where the unclamped flow
//     leaves [−1, 1].
// Bit-equal to the LibTorch ops it replaces (same float32 formulas, ~12
// kernels at the upsample size). xs (w), ys (h): the identity grid's axes.
void FinalizeSymmetric(const at::Tensor& flow,
                       const at::Tensor& certainty,
                       const at::Tensor& low,
                       const at::Tensor& xs,
                       const at::Tensor& ys,
                       at::Tensor& warp,
                       at::Tensor& certainty_out);

}  // namespace internal
}  // namespace l2m
