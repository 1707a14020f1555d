#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {

// Correlation of each query feature with a (2r+1)² window of support features
// around its warp target: corr[b, k, i, j] = Σ_c f0[b,c,i,j] / sqrt(C) ·
// f1(flow[b,:,i,j] + offset_k), where f1(·) is bilinear grid_sample (zeros
// padding, align_corners=False) and offset k = iy·(2r+1) + ix is (lin_w[ix],
// lin_h[iy]), lin_n = linspace(−2r/n, 2r/n, 2r+1) (one pixel steps at the
// query's size (h, w)).
// feature0 (B, C, h, w), feature1 (B, C, h', w'), flow (B, 2, h, w)
//   → (B, (2r+1)², h, w).
// support_offset: query b correlates with feature1's image
// (b + support_offset) mod B, so the symmetric batch passes its own
// features with offset B/2 instead of a copy with the halves swapped.
at::Tensor LocalCorrelation(const at::Tensor& feature0,
                            const at::Tensor& feature1,
                            int radius,
                            const at::Tensor& flow,
                            int64_t support_offset = 0);

}  // namespace l2m
