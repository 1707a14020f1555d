#include "l2m_core/model/feature_pca.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace l2m {

at::Tensor FeatureMapToRows(const at::Tensor& feature_map) {
  if (feature_map.dim() != 3) {
    throw std::invalid_argument("FeatureMapToRows: expected (C, h, w)");
  }
  return feature_map.flatten(1).t().contiguous();
}

PcaBasis FitPca(const at::Tensor& rows, int num_components) {
  if (rows.dim() != 2 || num_components < 1 ||
      num_components > std::min(rows.size(0), rows.size(1))) {
    throw std::invalid_argument(
        "FitPca: need (N, C) rows with N, C >= num_components = " +
        std::to_string(num_components));
  }
  const at::Tensor x = rows.to(torch::kCPU, torch::kFloat64);
  PcaBasis basis;
  basis.mean = x.mean(0);
  const at::Tensor centred = x - basis.mean;
  // Right singular vectors of the centred data = principal axes.
  const auto [u, s, vh] = at::linalg_svd(centred, /*full_matrices=*/false);
  at::Tensor components = vh.slice(0, 0, num_components).clone();
  const at::Tensor biggest = components.abs().argmax(1, /*keepdim=*/true);
  const at::Tensor signs = components.gather(1, biggest).sign();
  basis.components = components * signs;
  return basis;
}

at::Tensor PcaColours(const at::Tensor& rows, const PcaBasis& basis) {
  const at::Tensor x = rows.to(torch::kCPU, torch::kFloat64);
  if (x.dim() != 2 || x.size(1) != basis.mean.size(0)) {
    throw std::invalid_argument("PcaColours: feature width does not match");
  }
  const at::Tensor projected =
      torch::matmul(x - basis.mean, basis.components.t());
  // numpy's std (population, ddof = 0), as the reference's pca_feats.std(0).
  const at::Tensor z = (projected - projected.mean(0)) /
                       (projected.std(0, /*unbiased=*/false) + 1e-5);
  return (z * 0.5 + 0.5).clamp(0.0, 1.0).to(torch::kFloat32);
}

}  // namespace l2m
