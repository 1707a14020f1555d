#include "l2m_core/model/bias_activation_cuda.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace l2m {
namespace internal {
namespace {

// One thread per 16 bytes of the NHWC buffer; its channels are consecutive.
template <typename T>
__global__ void BiasRelu(T* __restrict__ x,
                         const float* __restrict__ bias,
                         long long vectors,
                         int C) {
  constexpr int V = 16 / sizeof(T);
  const long long i =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= vectors) return;
  const int c0 = static_cast<int>((i * V) % C);
  uint4 raw = reinterpret_cast<uint4*>(x)[i];
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int v = 0; v < V; ++v) {
    e[v] = static_cast<T>(fmaxf(static_cast<float>(e[v]) + bias[c0 + v], 0.f));
  }
  reinterpret_cast<uint4*>(x)[i] = raw;
}

}  // namespace

bool BiasReluInplaceSupported(const at::Tensor& x) {
  return x.is_cuda() && x.dim() == 4 &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
         (x.size(1) * static_cast<int64_t>(x.element_size())) % 16 == 0 &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf ||
          x.scalar_type() == at::kBFloat16);
}

void BiasReluInplace(at::Tensor& x, const at::Tensor& bias) {
  TORCH_CHECK(BiasReluInplaceSupported(x),
              "BiasReluInplace: x must be a channels-last CUDA tensor with "
              "16-byte channel rows");
  TORCH_CHECK(bias.is_cuda() && bias.scalar_type() == at::kFloat &&
                  bias.numel() == x.size(1) && bias.is_contiguous(),
              "BiasReluInplace: bias must be float32 (C) on the device");
  const c10::cuda::CUDAGuard guard(x.device());
  const int C = static_cast<int>(x.size(1));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "BiasRelu", [&] {
        const long long vectors =
            x.numel() / static_cast<long long>(16 / sizeof(scalar_t));
        if (vectors == 0) return;
        constexpr int kBlock = 256;
        BiasRelu<scalar_t>
            <<<static_cast<unsigned>((vectors + kBlock - 1) / kBlock),
               kBlock,
               0,
               c10::cuda::getCurrentCUDAStream()>>>(
                x.data_ptr<scalar_t>(), bias.data_ptr<float>(), vectors, C);
      });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "BiasReluInplace: ", cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
