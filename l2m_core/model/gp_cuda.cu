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

}  // namespace internal
}  // namespace l2m
