#include "l2m_core/model/gp_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace l2m {
namespace internal {
namespace {

__global__ void CosKernelFromDotsKernel(float* __restrict__ dots,
                                        const float* __restrict__ nx,
                                        const float* __restrict__ ny,
                                        long long N,
                                        long long M,
                                        long long total,
                                        float inv_T,
                                        float sigma) {
  const long long idx =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const long long j = idx % M, row = idx / M;  // row = b · N + i
  const long long b = row / N, i = row % N;
  // (nx ⊗ ny) + eps, dots / that, − 1, × (1/T), exp, + sigma·I: each op
  // rounded as LibTorch rounds it (no contractions).
  const float denom = __fadd_rn(__fmul_rn(nx[row], ny[b * M + j]), 1e-6f);
  const float c = __fdiv_rn(dots[idx], denom);
  float k = expf(__fmul_rn(__fsub_rn(c, 1.0f), inv_T));
  if (sigma != 0.f) k = __fadd_rn(k, i == j ? sigma : 0.f);
  dots[idx] = k;
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
  const long long total = dots.numel();
  if (total == 0) return;
  const c10::cuda::CUDAGuard guard(dots.device());
  constexpr int kBlock = 256;
  // LibTorch divides by a CPU scalar as multiplication by its reciprocal,
  // computed in float.
  const float inv_T = 1.0f / static_cast<float>(T);
  CosKernelFromDotsKernel<<<static_cast<unsigned>((total + kBlock - 1) /
                                                  kBlock),
                            kBlock,
                            0,
                            c10::cuda::getCurrentCUDAStream()>>>(
      dots.data_ptr<float>(),
      nx.data_ptr<float>(),
      ny.data_ptr<float>(),
      N,
      M,
      total,
      inv_T,
      static_cast<float>(sigma));
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess,
              "CosKernelFromDotsCuda: ",
              cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
