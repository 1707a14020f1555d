#include "l2m_core/model/input_conv_cuda.h"
#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace l2m {
namespace internal {
namespace {

constexpr int kIn = 3;  // input channels
constexpr int kTaps =
    9 * kIn;  // the GEMM's K: 3×3 window × channels (27 of 32)
constexpr int kTileH = 8, kTileW = 32;
constexpr int kThreads = 256;  // a warp a tile row
constexpr int kHaloH = kTileH + 2, kHaloW = kTileW + 2;
constexpr int kSlots = 4;  // a halo pixel's channels, the 4th always zero

__device__ inline unsigned short Bits(float v, __half) {
  return __half_as_ushort(__float2half_rn(v));
}
__device__ inline unsigned short Bits(float v, __nv_bfloat16) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// The conv as an implicit GEMM on the tensor cores: A (pixels × 32 taps)
// gathered from the image tile in shared memory, B (32 taps × kOut) the
// weights, held in registers as mma fragments. A block: an 8 × 32-pixel
// tile, a warp one tile row (two m16 fragments). The epilogue goes through
// shared memory so that each pixel's kOut channels are stored as whole
// 16-byte vectors of consecutive pixels.
template <typename T, int kOut>
__global__ void __launch_bounds__(kThreads)
    InputConvKernel(const float* __restrict__ x,
                    const float* __restrict__ weight,  // (kOut, 27)
                    const float* __restrict__ bias,
                    T* __restrict__ y,
                    int H,
                    int W,
                    long long sb,
                    long long sc,
                    long long sh,
                    long long sw,
                    int tiles_x) {
  constexpr int kN = kOut / 8;    // n8 fragments
  constexpr int kLdo = kOut + 8;  // staging row, padded against conflicts
  __shared__ __align__(16) unsigned short hs[kHaloH * kHaloW * kSlots];
  __shared__ __align__(16) T os[kTileH * kTileW * kLdo];
  const int b = blockIdx.y;
  const int y0 = blockIdx.x / tiles_x * kTileH;
  const int x0 = blockIdx.x % tiles_x * kTileW;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;

  // The image tile with its 1-pixel border, rounded to T (autocast's cast),
  // zero outside the image and in the 4th slot.
  const float* xb = x + b * sb;
  for (int i = threadIdx.x; i < kHaloH * kHaloW * kSlots; i += kThreads) {
    const int p = i / kSlots, ci = i % kSlots;
    const int gy = y0 + p / kHaloW - 1, gx = x0 + p % kHaloW - 1;
    float v = 0.f;
    if (ci < kIn && gy >= 0 && gy < H && gx >= 0 && gx < W) {
      v = xb[ci * sc + gy * sh + gx * sw];
    }
    hs[i] = Bits(v, T());
  }
  // B fragments (k = ci·9 + ky·3 + kx, the weight's own order): lane (g, t)
  // holds n = 8j + g and k = 16s + 2t (+1, +8, +9).
  unsigned bf[2][kN][2];
#pragma unroll
  for (int s = 0; s < 2; ++s) {
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      const float* wn = weight + (8 * j + g) * kTaps;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k = 16 * s + 2 * t + 8 * h;
        const float lo = k < kTaps ? __ldg(wn + k) : 0.f;
        const float hi = k + 1 < kTaps ? __ldg(wn + k + 1) : 0.f;
        bf[s][j][h] = Bits(lo, T()) | static_cast<unsigned>(Bits(hi, T()))
                                          << 16;
      }
    }
  }
  // A's gather offsets in hs for this lane's four k of each step; k ≥ 27
  // reads the always-zero 4th slot.
  int off[2][4];
#pragma unroll
  for (int s = 0; s < 2; ++s) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int k = 16 * s + 2 * t + (e & 1) + 8 * (e >> 1);
      const int ci = k / 9, r = k % 9;
      off[s][e] = k < kTaps ? ((r / 3) * kHaloW + r % 3) * kSlots + ci : 3;
    }
  }
  __syncthreads();

  float c[2][kN][4];
#pragma unroll
  for (int m = 0; m < 2; ++m) {
#pragma unroll
    for (int j = 0; j < kN; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) c[m][j][e] = 0.f;
    }
  }
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    // Rows g and g + 8 of this m16 fragment: tile pixels (warp, 16m + g).
    const unsigned short* p0 = hs + (warp * kHaloW + 16 * m + g) * kSlots;
    const unsigned short* p1 = p0 + 8 * kSlots;
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      const unsigned a[4] = {
          p0[off[s][0]] | static_cast<unsigned>(p0[off[s][1]]) << 16,
          p1[off[s][0]] | static_cast<unsigned>(p1[off[s][1]]) << 16,
          p0[off[s][2]] | static_cast<unsigned>(p0[off[s][3]]) << 16,
          p1[off[s][2]] | static_cast<unsigned>(p1[off[s][3]]) << 16};
#pragma unroll
      for (int j = 0; j < kN; ++j)
        Mma16816(c[m][j], a, bf[s][j][0], bf[s][j][1], T());
    }
  }

  // The conv's output rounded, + bias, ReLU, rounded again; staged.
#pragma unroll
  for (int m = 0; m < 2; ++m) {
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      const int n = 8 * j + 2 * t;
      const float b0 = __ldg(bias + n), b1 = __ldg(bias + n + 1);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int pix = warp * kTileW + 16 * m + g + 8 * r;
        const float v0 = fmaxf(Round<T>(c[m][j][2 * r]) + b0, 0.f);
        const float v1 = fmaxf(Round<T>(c[m][j][2 * r + 1]) + b1, 0.f);
        *reinterpret_cast<unsigned*>(os + pix * kLdo + n) =
            PackPair(v0, v1, T());
      }
    }
  }
  __syncthreads();
  constexpr int kVectors = kOut / 8;  // 16-byte vectors a pixel
  for (int i = threadIdx.x; i < kTileH * kTileW * kVectors; i += kThreads) {
    const int pix = i / kVectors, v = i % kVectors;
    const int gy = y0 + pix / kTileW, gx = x0 + pix % kTileW;
    if (gy >= H || gx >= W) continue;
    *reinterpret_cast<uint4*>(
        y + ((static_cast<size_t>(b) * H + gy) * W + gx) * kOut + 8 * v) =
        *reinterpret_cast<const uint4*>(os + pix * kLdo + 8 * v);
  }
}

}  // namespace

bool InputConvBiasReluSupported(const at::Tensor& x,
                                const at::Tensor& weight,
                                at::ScalarType dtype) {
  return x.is_cuda() && x.dim() == 4 && x.scalar_type() == at::kFloat &&
         x.size(1) == kIn && weight.dim() == 4 &&
         (weight.size(0) == 32 || weight.size(0) == 64) &&
         weight.size(1) == kIn && weight.size(2) == 3 && weight.size(3) == 3 &&
         (dtype == at::kHalf || dtype == at::kBFloat16);
}

at::Tensor InputConvBiasRelu(const at::Tensor& x,
                             const at::Tensor& weight,
                             const at::Tensor& bias,
                             at::ScalarType dtype) {
  TORCH_CHECK(InputConvBiasReluSupported(x, weight, dtype),
              "InputConvBiasRelu: x must be a float32 (B, 3, H, W) CUDA "
              "tensor, weight (32 or 64, 3, 3, 3), dtype fp16/bf16; got x ",
              x.scalar_type(),
              " ",
              x.sizes(),
              ", weight ",
              weight.sizes(),
              ", ",
              dtype);
  const int64_t C = weight.size(0);
  TORCH_CHECK(bias.defined() && bias.numel() == C,
              "InputConvBiasRelu: bias must have ",
              C,
              " values");
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  TORCH_CHECK(B <= 65535, "InputConvBiasRelu: batch too large");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor w = weight.to(x.device(), at::kFloat).contiguous();
  const at::Tensor b = bias.to(x.device(), at::kFloat).contiguous();
  at::Tensor y = at::empty(
      {B, C, H, W},
      x.options().dtype(dtype).memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) return y;
  const int tiles_x = static_cast<int>((W + kTileW - 1) / kTileW);
  const int tiles_y = static_cast<int>((H + kTileH - 1) / kTileH);
  const dim3 grid(static_cast<unsigned>(tiles_x * tiles_y),
                  static_cast<unsigned>(B));
  const auto stream = c10::cuda::getCurrentCUDAStream();
  auto launch = [&](auto tag, auto out) {
    using T = decltype(tag);
    InputConvKernel<T, decltype(out)::value>
        <<<grid, kThreads, 0, stream>>>(x.data_ptr<float>(),
                                        w.data_ptr<float>(),
                                        b.data_ptr<float>(),
                                        reinterpret_cast<T*>(y.data_ptr()),
                                        static_cast<int>(H),
                                        static_cast<int>(W),
                                        x.stride(0),
                                        x.stride(1),
                                        x.stride(2),
                                        x.stride(3),
                                        tiles_x);
  };
  ForStorageDtype(y, [&](auto tag) {
    if (C == 64) {
      launch(tag, std::integral_constant<int, 64>());
    } else {
      launch(tag, std::integral_constant<int, 32>());
    }
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "InputConvBiasRelu: ", cudaGetErrorString(error));
  return y;
}

}  // namespace internal
}  // namespace l2m
