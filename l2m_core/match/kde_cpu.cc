#include "l2m_core/match/kde_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define L2M_KDE_X86 1
#endif

namespace l2m {
namespace internal {
namespace {

constexpr float kMinExponent = -87.3f;  // exp() of less is (nearly) 0

// One term exp(-scale · |x_i - x_j|²), scalar.
inline float Term(
    const float* const* cols, int d, int64_t i, int64_t j, float scale) {
  float d2 = 0;
  for (int k = 0; k < d; ++k) {
    const float diff = cols[k][j] - cols[k][i];
    d2 += diff * diff;
  }
  return std::exp(std::max(-scale * d2, kMinExponent));
}

void RowsPortable(const float* const* cols,
                  int d,
                  int64_t n,
                  float scale,
                  int64_t begin,
                  int64_t end,
                  float* density) {
  for (int64_t i = begin; i < end; ++i) {
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; j < n; ++j) part[j % 8] += Term(cols, d, i, j, scale);
    float sum = 0;
    for (float p : part) sum += p;
    density[i] = sum;
  }
}

#ifdef L2M_KDE_X86
// exp(x) for x in [-87.3, 0], Cephes expf: x = n·ln2 + r, |r| <= ln2/2,
// exp(r) by a degree-5 polynomial, 2^n through the exponent bits.
__attribute__((target("avx2,fma"))) inline __m256 Exp256(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(kMinExponent));
  __m256 fx = _mm256_fmadd_ps(
      x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, x);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) void RowsAvx2(const float* const* cols,
                                                  int d,
                                                  int64_t n,
                                                  float scale,
                                                  int64_t begin,
                                                  int64_t end,
                                                  float* density) {
  const __m256 neg_scale = _mm256_set1_ps(-scale);
  const int64_t n8 = n / 8 * 8;
  for (int64_t i = begin; i < end; ++i) {
    __m256 xi[8];
    for (int k = 0; k < d; ++k) xi[k] = _mm256_set1_ps(cols[k][i]);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < n8; j += 8) {
      __m256 d2 = _mm256_setzero_ps();
      for (int k = 0; k < d; ++k) {
        const __m256 diff = _mm256_sub_ps(_mm256_loadu_ps(cols[k] + j), xi[k]);
        d2 = _mm256_fmadd_ps(diff, diff, d2);
      }
      acc = _mm256_add_ps(acc, Exp256(_mm256_mul_ps(d2, neg_scale)));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    float sum = 0;
    for (float v : lanes) sum += v;
    for (int64_t j = n8; j < n; ++j) sum += Term(cols, d, i, j, scale);
    density[i] = sum;
  }
}

bool HaveAvx2() {
  static const bool have =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
}
#endif

}  // namespace

const char* KdeDensityCpuKind() {
#ifdef L2M_KDE_X86
  if (HaveAvx2()) return "avx2";
#endif
  return "portable";
}

void KdeDensityCpu(
    const float* const* cols, int d, int64_t n, float scale, float* density) {
  // Rows are independent; 64 per task keeps the threads balanced.
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
#ifdef L2M_KDE_X86
    if (HaveAvx2() && d <= 8) {
      RowsAvx2(cols, d, n, scale, begin, end, density);
      return;
    }
#endif
    RowsPortable(cols, d, n, scale, begin, end, density);
  });
}

}  // namespace internal
}  // namespace l2m
