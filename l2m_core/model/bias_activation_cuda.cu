#include "l2m_core/model/bias_activation_cuda.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace l2m {
namespace internal {
namespace {

// One thread per 16 bytes of the NHWC buffer; its channels are consecutive.
// I: the index type (32-bit where the buffer allows: the channel modulo is
// the kernel's costliest instruction).
template <typename T, typename B, bool kRelu, typename I>
__global__ void BiasRelu(T* __restrict__ x,
                         const B* __restrict__ bias,
                         I vectors,
                         int C) {
  constexpr int V = 16 / sizeof(T);
  const I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= vectors) return;
  const int c0 = static_cast<int>((i * V) % static_cast<I>(C));
  uint4 raw = reinterpret_cast<uint4*>(x)[i];
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const float sum =
        static_cast<float>(e[v]) + static_cast<float>(bias[c0 + v]);
    e[v] = static_cast<T>(kRelu ? fmaxf(sum, 0.f) : sum);
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

namespace {

template <bool kRelu>
void BiasInplace(const char* name, at::Tensor& x, const at::Tensor& bias) {
  TORCH_CHECK(BiasReluInplaceSupported(x),
              name,
              ": x must be a channels-last CUDA tensor with 16-byte channel "
              "rows");
  TORCH_CHECK(bias.is_cuda() &&
                  (bias.scalar_type() == at::kFloat ||
                   (!kRelu && bias.scalar_type() == x.scalar_type())) &&
                  bias.numel() == x.size(1) && bias.is_contiguous(),
              name,
              ": bias must be a (C) tensor on the device, float32",
              kRelu ? "" : " or of x's dtype");
  const c10::cuda::CUDAGuard guard(x.device());
  const int C = static_cast<int>(x.size(1));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "BiasRelu", [&] {
        const long long vectors =
            x.numel() / static_cast<long long>(16 / sizeof(scalar_t));
        if (vectors == 0) return;
        constexpr int kBlock = 256;
        const unsigned blocks =
            static_cast<unsigned>((vectors + kBlock - 1) / kBlock);
        const auto stream = c10::cuda::getCurrentCUDAStream();
        auto launch = [&](auto bias_tag) {
          using B = decltype(bias_tag);
          const B* b = reinterpret_cast<const B*>(bias.data_ptr());
          if (x.numel() < (int64_t{1} << 32)) {
            BiasRelu<scalar_t, B, kRelu, unsigned>
                <<<blocks, kBlock, 0, stream>>>(x.data_ptr<scalar_t>(),
                                                b,
                                                static_cast<unsigned>(vectors),
                                                C);
          } else {
            BiasRelu<scalar_t, B, kRelu, long long>
                <<<blocks, kBlock, 0, stream>>>(
                    x.data_ptr<scalar_t>(), b, vectors, C);
          }
        };
        if (bias.scalar_type() == at::kFloat) {
          launch(float());
        } else {
          launch(scalar_t());
        }
      });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess, name, ": ", cudaGetErrorString(error));
}

}  // namespace

void BiasReluInplace(at::Tensor& x, const at::Tensor& bias) {
  BiasInplace<true>("BiasReluInplace", x, bias);
}

void BiasAddInplace(at::Tensor& x, const at::Tensor& bias) {
  BiasInplace<false>("BiasAddInplace", x, bias);
}

}  // namespace internal
}  // namespace l2m
