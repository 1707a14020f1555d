#include "l2m_core/model/max_pool_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace l2m {
namespace internal {
namespace {

__device__ inline __half2 Max(__half2 a, __half2 b) {
  return __hmax2_nan(a, b);
}
__device__ inline __nv_bfloat162 Max(__nv_bfloat162 a, __nv_bfloat162 b) {
  return __hmax2_nan(a, b);
}

// T2: __half2 or __nv_bfloat162; a uint4 holds four of them (8 channels).
template <typename T2>
__global__ void MaxPool2x2Kernel(const uint4* __restrict__ x,
                                 uint4* __restrict__ y,
                                 int H,
                                 int W,
                                 int Ho,
                                 int Wo,
                                 int V,
                                 long long total) {
  const long long i =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int v = static_cast<int>(i % V);
  long long rest = i / V;
  const int ox = static_cast<int>(rest % Wo);
  rest /= Wo;
  const int oy = static_cast<int>(rest % Ho);
  const long long b = rest / Ho;
  const long long top = ((b * H + 2 * oy) * W + 2 * ox) * V + v;
  const long long bottom = top + static_cast<long long>(W) * V;
  uint4 p[4] = {x[top], x[top + V], x[bottom], x[bottom + V]};
  uint4 out;
  const T2* a = reinterpret_cast<const T2*>(&p[0]);
  const T2* c = reinterpret_cast<const T2*>(&p[1]);
  const T2* d = reinterpret_cast<const T2*>(&p[2]);
  const T2* e = reinterpret_cast<const T2*>(&p[3]);
  T2* o = reinterpret_cast<T2*>(&out);
#pragma unroll
  for (int j = 0; j < 4; ++j) o[j] = Max(Max(a[j], c[j]), Max(d[j], e[j]));
  y[i] = out;
}

}  // namespace

bool MaxPool2x2Supported(const at::Tensor& x) {
  return x.is_cuda() && x.dim() == 4 &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
         x.size(1) % 8 == 0 &&
         (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16);
}

at::Tensor MaxPool2x2(const at::Tensor& x) {
  TORCH_CHECK(MaxPool2x2Supported(x),
              "MaxPool2x2: x must be a channels-last fp16/bf16 CUDA tensor "
              "with a multiple of 8 channels");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Ho = H / 2, Wo = W / 2;
  at::Tensor y =
      at::empty({B, C, Ho, Wo},
                x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int V = static_cast<int>(C / 8);
  const long long total = B * Ho * Wo * V;
  if (total == 0) return y;
  constexpr int kBlock = 256;
  const unsigned grid = static_cast<unsigned>((total + kBlock - 1) / kBlock);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const uint4* in = reinterpret_cast<const uint4*>(x.data_ptr());
  uint4* out = reinterpret_cast<uint4*>(y.data_ptr());
  auto launch = [&](auto pair_tag) {
    MaxPool2x2Kernel<decltype(pair_tag)>
        <<<grid, kBlock, 0, stream>>>(in,
                                      out,
                                      static_cast<int>(H),
                                      static_cast<int>(W),
                                      static_cast<int>(Ho),
                                      static_cast<int>(Wo),
                                      V,
                                      total);
  };
  if (x.scalar_type() == at::kHalf) {
    launch(__half2());
  } else {
    launch(__nv_bfloat162());
  }
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess, "MaxPool2x2: ", cudaGetErrorString(error));
  return y;
}

}  // namespace internal
}  // namespace l2m
