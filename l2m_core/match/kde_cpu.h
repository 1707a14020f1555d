#pragma once

#include <cstdint>

namespace l2m {
namespace internal {

// density[i] = Σ_j exp(-scale · |x_i - x_j|²) for n points of dim d given
// as d columns of n floats (cols[k][j] = x_j[k]), computed directly in
// float32: per-coordinate squared distances, a Cephes-style polynomial exp
// (≤ 2 ulp) and 8 independent partial sums per row. AVX2+FMA where the CPU
// has them (checked at run time), a portable loop otherwise; rows split over
// LibTorch's intra-op threads. Exponents below -87.3 are clamped there: such
// terms are < 1.2e-38 each, far below a density's float resolution (≥ 1:
// the point itself).
void KdeDensityCpu(
    const float* const* cols, int d, int64_t n, float scale, float* density);

// Which implementation KdeDensityCpu takes on this CPU ("avx2" or
// "portable"), for logs and tests.
const char* KdeDensityCpuKind();

}  // namespace internal
}  // namespace l2m
