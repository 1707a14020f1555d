#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// density_i = Σ_j exp(-|x_i - x_j|² · scale) for x (N, D) float32 on CUDA,
// D <= 8, in one kernel: each thread owns a row and walks the points through
// shared-memory tiles, so neither the N × N kernel matrix nor any block of it
// is materialised (the cdist path made ~6 passes over 7 blocks of 256 MiB
// for N = 20 000). Squared distances are summed per coordinate (not the
// matmul form), accumulation in fp32. Returns (N) float32.
at::Tensor KdeDensityCuda(const at::Tensor& x, double scale);

}  // namespace internal
}  // namespace l2m
