#pragma once

// The 3-component PCA picture of ViT patch features (L2M's vis_feats): one
// PCA fitted jointly on the patches of all images of an encoder, so colours
// are comparable across images, then per image each component z-scored and
// mapped through 0.5 + 0.5 z, clipped to [0, 1].

#include <ATen/core/Tensor.h>

#include <vector>

namespace l2m {

struct PcaBasis {
  at::Tensor mean;        // (C) float64
  at::Tensor components;  // (k, C) float64, orthonormal rows
};

// PCA of the rows of `rows` (N, C) by SVD in float64. Signs are fixed so that
// each component's largest-magnitude loading is positive (scikit-learn >= 1.5
// does the same), which makes pictures reproducible.
PcaBasis FitPca(const at::Tensor& rows, int num_components);

// Colours of one image's features (C, h, w) or (h*w, C) given the basis:
// returns (h*w, k) float32 in [0, 1] (z-score per component over this image,
// 0.5 + 0.5 z, clipped; std + 1e-5 as the reference).
at::Tensor PcaColours(const at::Tensor& rows, const PcaBasis& basis);

// (C, h, w) -> (h*w, C) rows, for the functions above.
at::Tensor FeatureMapToRows(const at::Tensor& feature_map);

}  // namespace l2m
