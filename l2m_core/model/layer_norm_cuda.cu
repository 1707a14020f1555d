#include "l2m_core/model/layer_norm_cuda.h"
#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace l2m {
namespace internal {
namespace {

constexpr int kVec = 8;  // elements a thread loads at once (16 bytes)

template <typename T>
__device__ inline void Load8(const T* p, float* f) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int k = 0; k < kVec; ++k) f[k] = static_cast<float>(e[k]);
}

template <typename T>
__device__ inline void Store8(T* p, const float* f) {
  alignas(16) T e[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) e[k] = static_cast<T>(f[k]);
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(e);
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ inline float BlockSum(float v, float* scratch) {
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v += __shfl_xor_sync(0xffffffffu, v, d);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;
  __syncthreads();  // scratch is free again
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

// One block a row; thread t holds elements [8t, 8t + 8).
template <typename T>
__global__ void AddScaledLayerNormKernel(const T* __restrict__ x,
                                         const T* __restrict__ a,
                                         const T* __restrict__ gamma,
                                         const T* __restrict__ weight,
                                         const T* __restrict__ bias,
                                         T* __restrict__ x_out,
                                         T* __restrict__ h,
                                         int C,
                                         float eps) {
  __shared__ float scratch[32];
  const long long row = blockIdx.x;
  const int c = threadIdx.x * kVec;
  const bool active = c < C;
  float v[kVec] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  if (active) {
    float xv[kVec], av[kVec], g[kVec];
    Load8(x + row * C + c, xv);
    Load8(a + row * C + c, av);
    if (gamma != nullptr) {
      Load8(gamma + c, g);
    } else {
#pragma unroll
      for (int k = 0; k < kVec; ++k) g[k] = 1.f;
    }
    // addcmul's float math (a·γ rounded, then added: no fused multiply-add),
    // rounded once to T; the statistics see the rounded values, as a
    // LayerNorm reading x_out would.
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      v[k] = __fadd_rn(xv[k], __fmul_rn(av[k], g[k]));
      v[k] = static_cast<float>(static_cast<T>(v[k]));
    }
    Store8(x_out + row * C + c, v);
  }
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < kVec; ++k) s += v[k];
  const float mean = BlockSum(s, scratch) / C;
  float q = 0.f;
  if (active) {
#pragma unroll
    for (int k = 0; k < kVec; ++k) q += (v[k] - mean) * (v[k] - mean);
  }
  const float rstd = rsqrtf(BlockSum(q, scratch) / C + eps);
  if (!active) return;
  float w[kVec], b[kVec], out[kVec];
  Load8(weight + c, w);
  Load8(bias + c, b);
#pragma unroll
  for (int k = 0; k < kVec; ++k) out[k] = (v[k] - mean) * rstd * w[k] + b[k];
  Store8(h + row * C + c, out);
}

}  // namespace

bool AddScaledLayerNormSupported(const at::Tensor& x) {
  return x.is_cuda() && x.dim() >= 1 && x.is_contiguous() &&
         x.size(-1) % kVec == 0 && x.size(-1) <= 1024 * kVec &&
         (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16);
}

std::pair<at::Tensor, at::Tensor> AddScaledLayerNorm(const at::Tensor& x,
                                                     const at::Tensor& a,
                                                     const at::Tensor& gamma,
                                                     const at::Tensor& weight,
                                                     const at::Tensor& bias,
                                                     double eps) {
  TORCH_CHECK(AddScaledLayerNormSupported(x),
              "AddScaledLayerNorm: x must be a contiguous fp16/bf16 CUDA "
              "tensor whose last size is a multiple of 8, at most 8192");
  const int64_t C = x.size(-1);
  TORCH_CHECK(a.sizes() == x.sizes() && a.scalar_type() == x.scalar_type() &&
                  a.device() == x.device() && a.is_contiguous(),
              "AddScaledLayerNorm: a must be a contiguous tensor of x's "
              "shape, dtype and device");
  for (const at::Tensor* t : {&gamma, &weight, &bias}) {
    if (t == &gamma && !gamma.defined()) continue;
    TORCH_CHECK(t->defined() && t->dim() == 1 && t->size(0) == C &&
                    t->scalar_type() == x.scalar_type() &&
                    t->device() == x.device() && t->is_contiguous(),
                "AddScaledLayerNorm: gamma, weight and bias must be (C) "
                "tensors of x's dtype and device");
  }
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor x_out = at::empty_like(x), h = at::empty_like(x);
  const int64_t rows = x.numel() / C;
  TORCH_CHECK(rows < (1LL << 31), "AddScaledLayerNorm: too many rows");
  if (rows == 0) return {x_out, h};
  const int threads =
      static_cast<int>((C / kVec + 31) / 32 * 32);  // whole warps
  ForStorageDtype(x, [&](auto tag) {
    using T = decltype(tag);
    AddScaledLayerNormKernel<T><<<static_cast<unsigned>(rows),
                                  threads,
                                  0,
                                  c10::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const T*>(x.data_ptr()),
        reinterpret_cast<const T*>(a.data_ptr()),
        gamma.defined() ? reinterpret_cast<const T*>(gamma.data_ptr())
                        : nullptr,
        reinterpret_cast<const T*>(weight.data_ptr()),
        reinterpret_cast<const T*>(bias.data_ptr()),
        reinterpret_cast<T*>(x_out.data_ptr()),
        reinterpret_cast<T*>(h.data_ptr()),
        static_cast<int>(C),
        static_cast<float>(eps));
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "AddScaledLayerNorm: ", cudaGetErrorString(error));
  return {x_out, h};
}

}  // namespace internal
}  // namespace l2m
