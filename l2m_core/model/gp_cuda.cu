#include "l2m_core/model/gp_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <type_traits>

namespace l2m {
namespace internal {
namespace {

// A block per chunk of one (b, i) row: blockIdx.x = b · N + i; a thread
// kV consecutive columns j (4 where M allows: one element a thread kept too
// few bytes in flight, ~0.6 TB/s on an H100).
template <int kV>
__global__ void CosKernelFromDotsKernel(float* __restrict__ dots,
                                        const float* __restrict__ nx,
                                        const float* __restrict__ ny,
                                        int N,
                                        int M,
                                        float inv_T,
                                        float sigma) {
  const int j0 = (blockIdx.y * blockDim.x + threadIdx.x) * kV;
  if (j0 >= M) return;
  const unsigned row = blockIdx.x;  // b · N + i
  const unsigned b = row / N, i = row % N;
  float* out = dots + static_cast<size_t>(row) * M + j0;
  const float* nyb = ny + static_cast<size_t>(b) * M + j0;
  float d[kV], n[kV];
  if constexpr (kV == 4) {
    const float4 dv = *reinterpret_cast<const float4*>(out);
    const float4 nv = __ldg(reinterpret_cast<const float4*>(nyb));
    d[0] = dv.x, d[1] = dv.y, d[2] = dv.z, d[3] = dv.w;
    n[0] = nv.x, n[1] = nv.y, n[2] = nv.z, n[3] = nv.w;
  } else {
    d[0] = out[0], n[0] = nyb[0];
  }
  const float nxi = nx[row];
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    // (nx ⊗ ny) + eps, dots / that, − 1, × (1/T), exp, + sigma·I: each op
    // rounded as LibTorch rounds it (no contractions).
    const float denom = __fadd_rn(__fmul_rn(nxi, n[v]), 1e-6f);
    const float c = __fdiv_rn(d[v], denom);
    float k = expf(__fmul_rn(__fsub_rn(c, 1.0f), inv_T));
    if (sigma != 0.f) {
      k = __fadd_rn(k, static_cast<unsigned>(j0 + v) == i ? sigma : 0.f);
    }
    d[v] = k;
  }
  if constexpr (kV == 4) {
    *reinterpret_cast<float4*>(out) = make_float4(d[0], d[1], d[2], d[3]);
  } else {
    out[0] = d[0];
  }
}

// Blocked right-looking Cholesky of the lower triangle in shared memory S,
// with the inverse X = L⁻¹ by blocked forward substitution one panel behind,
// in panels of kPanel columns. A panel step has two phases, a barrier after
// each:
//   A. warps 0–3 factor panel p (its columns, all rows below; a named
//      barrier of those warps between columns); warps 4–7 finish X's rows
//      of panel p − 1 (each thread its own columns: no synchronisation);
//   B. all threads apply panel p to S's trailing triangle and X's rows of
//      panel p − 1 to X's rows below it: rank-kPanel updates, kPanel
//      multiply-adds for each element loaded and stored.
// The two parts of a phase read only final values and write disjoint
// regions. Column-at-a-time forms (a barrier and one multiply-add an element
// a column) were issue- or latency-bound at ~310–350 µs for n = 160, phase A
// on one warp at 235 µs; this form takes 135 µs (H100).
// Threads: 32 × 32, x over columns. The pitch is a multiple of 4 for the
// 16-byte loads of a row's panel, whose eight lanes a phase then cover all
// 32 banks.
constexpr int kPanel = 8;
constexpr int kCholPitch = static_cast<int>(kCholeskyInverseMaxBlock) + 4;
constexpr int kRowsPerThread =
    (static_cast<int>(kCholeskyInverseMaxBlock) + 31) / 32;

// bar.sync on barrier `id` (not 0, __syncthreads' own) for `threads`.
__device__ __forceinline__ void NamedBarrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// S[row][c0 .. c0 + 8) into v.
__device__ __forceinline__ void LoadPanelRow(const float* S,
                                             int row,
                                             int c0,
                                             float (&v)[kPanel]) {
  const float4* p = reinterpret_cast<const float4*>(S + row * kCholPitch + c0);
  const float4 lo = p[0], hi = p[1];
  v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
  v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
}

__global__ void __launch_bounds__(1024)
    CholeskyInverseKernel(const float* __restrict__ c,
                          int64_t c_batch,
                          int c_row,
                          float* __restrict__ l,
                          int64_t l_batch,
                          int l_row,
                          float* __restrict__ inv,
                          int64_t inv_batch,
                          int inv_row,
                          int n) {
  extern __shared__ __align__(16) float smem[];
  float* S = smem;                   // the factor (lower)
  float* X = smem + n * kCholPitch;  // its inverse (lower)
  const int tx = threadIdx.x, ty = threadIdx.y;
  const float* cb = c + blockIdx.x * c_batch;
  for (int i = ty; i < n; i += 32) {
    for (int j = tx; j < n; j += 32) {
      // Only S's lower triangle is used; X's upper one must be zero (the
      // rank updates read whole panel rows of it).
      if (j <= i)
        S[i * kCholPitch + j] = cb[static_cast<int64_t>(i) * c_row + j];
      X[i * kCholPitch + j] = i == j ? 1.f : 0.f;
    }
  }
  __syncthreads();
  const int panels = (n + kPanel - 1) / kPanel;
  for (int p = 0; p <= panels; ++p) {
    const int c0 = p * kPanel;
    // Phase A. Each thread loads all its operands of a column step before
    // it stores any (the compiler cannot reorder shared loads past stores
    // that may alias them: a load-update-store chain a row was ~40 cycles).
    if (ty < 4 && p < panels) {
      const int t4 = ty * 32 + tx;  // 0..127: rows col + 1 + t4 + 128q
      const int w = min(kPanel, n - c0);
      for (int t = 0; t < w; ++t) {
        const int col = c0 + t;
        NamedBarrier(1, 128);
        const float d = sqrtf(S[col * kCholPitch + col]);
        const float r = 1.f / d;
        float lc[kPanel - 1];  // the panel's later rows, column col, scaled
#pragma unroll
        for (int u = 0; u < kPanel - 1; ++u) {
          const int t2 = u + 1;
          lc[u] = t2 > t && t2 < w ? S[(c0 + t2) * kCholPitch + col] * r : 0.f;
        }
        float li[2], v[2][kPanel - 1];
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int i = col + 1 + t4 + 128 * q;
          li[q] = i < n ? S[i * kCholPitch + col] * r : 0.f;
#pragma unroll
          for (int u = 0; u < kPanel - 1; ++u) {
            const int t2 = u + 1;
            const bool on = i < n && t2 > t && t2 < w && c0 + t2 <= i;
            v[q][u] = on ? S[i * kCholPitch + c0 + t2] : 0.f;
          }
        }
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int i = col + 1 + t4 + 128 * q;
#pragma unroll
          for (int u = 0; u < kPanel - 1; ++u) {
            const int t2 = u + 1;
            if (i < n && t2 > t && t2 < w && c0 + t2 <= i) {
              S[i * kCholPitch + c0 + t2] = v[q][u] - li[q] * lc[u];
            }
          }
        }
        // Column col itself, once every thread has read it unscaled.
        NamedBarrier(1, 128);
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int i = col + 1 + t4 + 128 * q;
          if (i < n) S[i * kCholPitch + col] = li[q];
        }
        if (t4 == 0) S[col * kCholPitch + col] = d;
      }
    } else if (ty >= 4 && ty < 8 && p > 0) {
      // X's rows of panel p − 1; a thread owns columns t4 + 128q of them.
      const int t4 = (ty - 4) * 32 + tx;
      const int c1 = c0 - kPanel;
      const int w = min(kPanel, n - c1);
      for (int t = 0; t < w; ++t) {
        const int row = c1 + t;
        const float rr = 1.f / S[row * kCholPitch + row];
        float lr[kPanel - 1];  // L[row2][row] for the panel's later rows
#pragma unroll
        for (int u = 0; u < kPanel - 1; ++u) {
          const int t2 = u + 1;
          lr[u] = t2 > t && t2 < w ? S[(c1 + t2) * kCholPitch + row] : 0.f;
        }
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int j = t4 + 128 * q;
          if (j <= row) {
            const float x = X[row * kCholPitch + j] * rr;
            float xv[kPanel - 1];
#pragma unroll
            for (int u = 0; u < kPanel - 1; ++u) {
              const int t2 = u + 1;
              xv[u] = t2 > t && t2 < w ? X[(c1 + t2) * kCholPitch + j] : 0.f;
            }
            X[row * kCholPitch + j] = x;
#pragma unroll
            for (int u = 0; u < kPanel - 1; ++u) {
              const int t2 = u + 1;
              if (t2 > t && t2 < w)
                X[(c1 + t2) * kCholPitch + j] = xv[u] - lr[u] * x;
            }
          }
        }
      }
    }
    __syncthreads();
    // Phase B: S's trailing triangle from panel p (a full panel whenever
    // rows remain below it).
    const int first = c0 + kPanel;
    if (p < panels && first < n) {
#pragma unroll
      for (int a = 0; a < kRowsPerThread; ++a) {
        const int i = first + ty + 32 * a;
        if (i < n) {
          float li[kPanel];
          LoadPanelRow(S, i, c0, li);
#pragma unroll
          for (int b = 0; b <= a; ++b) {
            const int j = first + tx + 32 * b;
            if (j <= i) {
              float lj[kPanel];
              LoadPanelRow(S, j, c0, lj);
              float acc = S[i * kCholPitch + j];
#pragma unroll
              for (int t = 0; t < kPanel; ++t) acc -= li[t] * lj[t];
              S[i * kCholPitch + j] = acc;
            }
          }
        }
      }
    }
    // X's rows below panel p − 1 from its (now final) rows.
    if (p > 0 && c0 < n) {
      const int c1 = c0 - kPanel;
#pragma unroll
      for (int a = 0; a < kRowsPerThread; ++a) {
        const int i = c0 + ty + 32 * a;
        if (i < n) {
          float li[kPanel];
          LoadPanelRow(S, i, c1, li);
#pragma unroll
          for (int b = 0; b < kRowsPerThread; ++b) {
            const int j = tx + 32 * b;
            if (32 * b < c0 && j < c0) {
              float acc = X[i * kCholPitch + j];
#pragma unroll
              for (int t = 0; t < kPanel; ++t) {
                acc -= li[t] * X[(c1 + t) * kCholPitch + j];
              }
              X[i * kCholPitch + j] = acc;
            }
          }
        }
      }
    }
    __syncthreads();
  }
  float* lb = l + blockIdx.x * l_batch;
  float* ib = inv + blockIdx.x * inv_batch;
  for (int i = ty; i < n; i += 32) {
    for (int j = tx; j < n; j += 32) {
      const bool lower = j <= i;
      lb[static_cast<int64_t>(i) * l_row + j] =
          lower ? S[i * kCholPitch + j] : 0.f;
      ib[static_cast<int64_t>(i) * inv_row + j] =
          lower ? X[i * kCholPitch + j] : 0.f;
    }
  }
}

}  // namespace

void CosKernelFromDotsCuda(at::Tensor& dots,
                           const at::Tensor& nx,
                           const at::Tensor& ny,
                           double T,
                           double sigma) {
  TORCH_CHECK(dots.is_cuda() && dots.dim() == 3 && dots.is_contiguous() &&
                  dots.scalar_type() == at::kFloat,
              "CosKernelFromDotsCuda: dots must be a contiguous float32 "
              "(B, N, M) CUDA tensor");
  const int64_t B = dots.size(0), N = dots.size(1), M = dots.size(2);
  TORCH_CHECK(nx.device() == dots.device() && nx.scalar_type() == at::kFloat &&
                  nx.is_contiguous() && nx.sizes() == at::IntArrayRef({B, N}),
              "CosKernelFromDotsCuda: nx must be a contiguous float32 (B, N) "
              "tensor on dots' device");
  TORCH_CHECK(ny.device() == dots.device() && ny.scalar_type() == at::kFloat &&
                  ny.is_contiguous() && ny.sizes() == at::IntArrayRef({B, M}),
              "CosKernelFromDotsCuda: ny must be a contiguous float32 (B, M) "
              "tensor on dots' device");
  if (dots.numel() == 0) return;
  TORCH_CHECK(B * N < (int64_t{1} << 31) && M < (int64_t{1} << 31),
              "CosKernelFromDotsCuda: ",
              dots.sizes(),
              " is too large");
  const c10::cuda::CUDAGuard guard(dots.device());
  constexpr int kBlock = 256;
  // LibTorch divides by a CPU scalar as multiplication by its reciprocal,
  // computed in float.
  const float inv_T = 1.0f / static_cast<float>(T);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  auto launch = [&](auto v) {
    constexpr int kV = decltype(v)::value;
    const dim3 grid(static_cast<unsigned>(B * N),
                    static_cast<unsigned>((M / kV + kBlock - 1) / kBlock));
    TORCH_CHECK(grid.y <= 65535, "CosKernelFromDotsCuda: rows too long");
    CosKernelFromDotsKernel<kV>
        <<<grid, kBlock, 0, stream>>>(dots.data_ptr<float>(),
                                      nx.data_ptr<float>(),
                                      ny.data_ptr<float>(),
                                      static_cast<int>(N),
                                      static_cast<int>(M),
                                      inv_T,
                                      static_cast<float>(sigma));
  };
  // Rows of whole, 16-byte aligned float4s (fresh allocations are aligned).
  const bool vec4 = M % 4 == 0 &&
                    reinterpret_cast<uintptr_t>(dots.data_ptr()) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(ny.data_ptr()) % 16 == 0;
  if (vec4) {
    launch(std::integral_constant<int, 4>());
  } else {
    launch(std::integral_constant<int, 1>());
  }
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess,
              "CosKernelFromDotsCuda: ",
              cudaGetErrorString(error));
}

void CholeskyInverseBlockCuda(const at::Tensor& c,
                              at::Tensor& l,
                              at::Tensor& inv) {
  auto check = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat && t.dim() == 3 &&
                    t.size(1) == t.size(2) && t.stride(2) == 1 &&
                    t.stride(1) < (int64_t{1} << 31),
                "CholeskyInverseBlockCuda: ",
                name,
                " must be a float32 CUDA tensor (B, n, n) with rows of unit "
                "stride");
    TORCH_CHECK(t.sizes() == c.sizes() && t.device() == c.device(),
                "CholeskyInverseBlockCuda: ",
                name,
                " must have c's shape and device");
  };
  check(c, "c");
  check(l, "l");
  check(inv, "inv");
  const int64_t B = c.size(0), n = c.size(1);
  TORCH_CHECK(n <= kCholeskyInverseMaxBlock,
              "CholeskyInverseBlockCuda: blocks of at most ",
              kCholeskyInverseMaxBlock,
              " rows, got ",
              n);
  if (B == 0 || n == 0) return;
  const c10::cuda::CUDAGuard guard(c.device());
  const size_t smem = 2 * static_cast<size_t>(n) * kCholPitch * sizeof(float);
  const cudaError_t e =
      cudaFuncSetAttribute(CholeskyInverseKernel,
                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem));
  TORCH_CHECK(
      e == cudaSuccess, "CholeskyInverseBlockCuda: ", cudaGetErrorString(e));
  CholeskyInverseKernel<<<static_cast<unsigned>(B),
                          dim3(32, 32),
                          smem,
                          c10::cuda::getCurrentCUDAStream()>>>(
      c.data_ptr<float>(),
      c.stride(0),
      static_cast<int>(c.stride(1)),
      l.data_ptr<float>(),
      l.stride(0),
      static_cast<int>(l.stride(1)),
      inv.data_ptr<float>(),
      inv.stride(0),
      static_cast<int>(inv.stride(1)),
      static_cast<int>(n));
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess,
              "CholeskyInverseBlockCuda: ",
              cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
