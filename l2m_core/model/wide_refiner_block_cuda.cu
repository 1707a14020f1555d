#include "l2m_core/model/refiner_tile_cuda.cuh"
#include "l2m_core/model/storage_dtype_cuda.cuh"
#include "l2m_core/model/wide_refiner_block_cuda.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

namespace l2m {
namespace internal {
namespace {

using namespace refiner_tile;

// Warp roles: four producer warps compute the depthwise conv, eight
// consumer warps the 1×1.
constexpr int kProducerThreads = 128;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kProducerThreads + kConsumerThreads;

// Named barriers (0 is __syncthreads): the consumers' B-stage barrier, and
// A's hand-over in three groups of channels (full: producers arrive,
// consumers wait; empty: the reverse).
constexpr int kBarConsumers = 1;
constexpr int kBarFull = 2;   // + group
constexpr int kBarEmpty = 5;  // + group
constexpr int kGroups = 3;
constexpr int kBStages = 3;

__device__ inline void BarSync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ inline void BarArrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// Shared memory, in T elements:
//   a     [kChunks][kM][64]     the tile's relu(depthwise + bias), K-chunks
//                               of 128-byte rows (pixels), 16-byte granules
//                               XOR-swizzled (conflict-free ldmatrix of 8
//                               consecutive pixels and producer stores of 8
//                               pixels a column apart)
//   b     [3][kN][32]           three stages of the 1×1 weights (64-byte
//                               rows, swizzled alike)
//   warp  [4][2] halo + taps    per producer warp, double-buffered: one
//                               8-channel slice's 12 × 20 halo (rows padded
//                               to 336 bytes: the 8 rows a warp reads fall
//                               on distinct banks) and its 25 taps + bias
// 218 KB at P = 576.
template <int P>
struct WideLayout {
  static constexpr int kTileH = 8, kTileW = 16, kM = kTileH * kTileW;
  static constexpr int kChunk = 64;
  static constexpr int kChunks = P / kChunk;
  static constexpr int kN = 192;
  static constexpr int kPasses = P / kN;
  static constexpr int kBK = 32;          // K of one B stage
  static constexpr int kSteps = P / kBK;  // B stages a pass
  static constexpr int kStepsPerGroup = kSteps / kGroups;
  static constexpr int kSlice = 8;  // channels of one producer slice
  static constexpr int kSlices = P / kSlice;
  static constexpr int kSlicesPerGroup = kSlices / kGroups;
  static constexpr int kHaloH = kTileH + 2 * kHalo, kHaloW = kTileW + 2 * kHalo;
  static constexpr int kHaloRow = kHaloW * kSlice + 8;  // 336 bytes
  static constexpr int kHaloElements = kHaloH * kHaloRow;
  static constexpr int kTapFloats = 26 * kSlice;  // 25 taps, then the bias
  static constexpr int kWarpBuffer = kHaloElements + 2 * kTapFloats;  // T's
  static constexpr int kAElements = kM * P;
  static constexpr int kBStage = kN * kBK;
  static constexpr size_t kBytes =
      (static_cast<size_t>(kAElements) + kBStages * kBStage +
       8 * static_cast<size_t>(kWarpBuffer)) *
      2;
  static_assert(P % kN == 0 && P % kChunk == 0 && kSteps % kGroups == 0 &&
                    (kSlicesPerGroup % 4) == 0 && kSlices % kGroups == 0,
                "whole passes, chunks, slices and hand-over groups");
};

// Element offset of (pixel, channel) in a swizzled 64-channel chunk of A.
__device__ inline int SwizzledA(int p, int c) {
  return p * 64 + ((((c >> 3) ^ p ^ (p >> 4)) & 7) << 3) + (c & 7);
}
// Element offset of (row, channel) in a swizzled 32-channel stage of B.
__device__ inline int SwizzledB(int n, int c) {
  return n * 32 + ((((c >> 3) ^ (n >> 1)) & 3) << 3) + (c & 7);
}

// kMode (timing experiments): 0 the block, 2 no MMAs, 3 producers idle.
template <typename T, int P, int kMode>
__global__ void __launch_bounds__(kThreads, 1)
    WideRefinerBlockKernel(const T* __restrict__ x,
                           T* __restrict__ y,
                           const float* __restrict__ dw_w,
                           const float* __restrict__ dw_b,
                           const T* __restrict__ pw_w,
                           const float* __restrict__ pw_b,
                           int H,
                           int W,
                           int tiles_x,
                           int per_image,
                           int tiles) {
  using L = WideLayout<P>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* as = reinterpret_cast<T*>(smem);
  T* bs = as + L::kAElements;
  T* ws = bs + kBStages * L::kBStage;
  const int first = blockIdx.x, step = gridDim.x;
  auto coords = [&](int tile, int& b, int& y0, int& x0) {
    const int in_image = tile % per_image;
    b = tile / per_image;
    y0 = in_image / tiles_x * L::kTileH;
    x0 = in_image % tiles_x * L::kTileW;
  };

  if (threadIdx.x < kProducerThreads) {
    // Producers: each warp on its own 8-channel slices (every 4th), without
    // block-wide barriers, so one warp's loads wait while another computes.
    // A lane: tile row lane / 4, all 16 columns, channels 2 · (lane % 4).
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = lane / 4, cp = lane % 4;
    using Dw = DwTile<1, 16, 2, true>;
    T* buffers = ws + warp * 2 * L::kWarpBuffer;
    auto load_slice = [&](int tile, int slice, int buf) {
      int b, y0, x0;
      coords(tile, b, y0, x0);
      T* hb = buffers + buf * L::kWarpBuffer;
      float* taps = reinterpret_cast<float*>(hb + L::kHaloElements);
      // 26 rows of 8 floats: 52 16-byte copies.
      for (int i = lane; i < 52; i += 32) {
        const int t = i / 2, half = i % 2;
        const float* src = t < 25 ? dw_w + t * P + slice * L::kSlice + half * 4
                                  : dw_b + slice * L::kSlice + half * 4;
        CopyAsync16(taps + t * L::kSlice + half * 4, src, true);
      }
      LoadHaloAsync<T, L::kHaloH, L::kHaloW, L::kSlice, 1, 32, L::kHaloRow>(
          hb,
          x + static_cast<size_t>(b) * H * W * P + slice * L::kSlice,
          H,
          W,
          P,
          1,
          y0,
          x0,
          lane);
    };
    // A warp's slices of a tile, in order: group g, j-th: g·kSlicesPerGroup
    // + 4j + warp.
    constexpr int kPerGroup = L::kSlicesPerGroup / 4;
    auto slice_of = [&](int g, int j) {
      return g * L::kSlicesPerGroup + 4 * j + warp;
    };
    int buf = 0;
    if constexpr (kMode != 3) load_slice(first, slice_of(0, 0), 0);
    for (int tile = first; tile < tiles; tile += step) {
#pragma unroll 1
      for (int g = 0; g < kGroups; ++g) {
        // The consumers are done with this group of the last tile's A.
        if (tile != first) BarSync(kBarEmpty + g, kThreads);
        if constexpr (kMode != 3) {
#pragma unroll 1
          for (int j = 0; j < kPerGroup; ++j) {
            CopyAsyncWait<0>();
            __syncwarp();
            if (j + 1 < kPerGroup) {
              load_slice(tile, slice_of(g, j + 1), buf ^ 1);
            } else if (g + 1 < kGroups) {
              load_slice(tile, slice_of(g + 1, 0), buf ^ 1);
            } else if (tile + step < tiles) {
              load_slice(tile + step, slice_of(0, 0), buf ^ 1);
            }
            const int slice = slice_of(g, j);
            const T* hb = buffers + buf * L::kWarpBuffer;
            const float* taps =
                reinterpret_cast<const float*>(hb + L::kHaloElements);
            float acc[Dw::kRows][Dw::kCols][Dw::kCh];
            DepthwiseReluTile<T, L::kHaloW, L::kSlice, Dw, L::kHaloRow, true>(
                hb + r * L::kHaloRow + cp * 2,
                taps + cp * 2,
                L::kSlice,
                taps + 25 * L::kSlice + cp * 2,
                acc);
            T* chunk = as + (slice / 8) * (L::kM * L::kChunk);
            const int c = (slice % 8) * 8 + cp * 2;
#pragma unroll
            for (int rx = 0; rx < Dw::kCols; ++rx) {
              StoreChannels<2>(chunk + SwizzledA(r * L::kTileW + rx, c),
                               acc[0][rx]);
            }
            buf ^= 1;
          }
        }
        __syncwarp();
        BarArrive(kBarFull + g, kThreads);
      }
    }
    return;
  }

  // Consumers: 2 × 4 warps of 64 pixels × 48 output channels; B stages of
  // 32 input channels, three in flight.
  const int ctid = threadIdx.x - kProducerThreads;
  const int warp = ctid / 32, lane = ctid % 32;
  const int wm = warp / 4, wn = warp % 4;
  constexpr int kStepsPerTile = L::kPasses * L::kSteps;
  // B stage number s of this block's sequence (tile s / kStepsPerTile,
  // pass, k step); 3 granules a thread. Commits an empty group past the end
  // so that the wait counts stay aligned.
  int next_load = 0;
  auto load_next_b = [&] {
    const int s = next_load++;
    const int tile = first + (s / kStepsPerTile) * step;
    if (tile < tiles) {
      const int pass = s % kStepsPerTile / L::kSteps, ks = s % L::kSteps;
      T* stage = bs + (s % kBStages) * L::kBStage;
      const T* src = pw_w + static_cast<size_t>(pass) * L::kN * P + ks * L::kBK;
#pragma unroll
      for (int i = 0; i < L::kN * 4 / kConsumerThreads; ++i) {
        const int idx = ctid + i * kConsumerThreads;
        const int n = idx / 4, g = idx % 4;
        CopyAsync16(stage + SwizzledB(n, g * 8), src + n * P + g * 8, true);
      }
    }
    CopyAsyncCommit();
  };
  for (int i = 0; i < kBStages - 1; ++i) load_next_b();
  int consumed = 0;
  for (int tile = first; tile < tiles; tile += step) {
    const bool last = tile + step >= tiles;
    int b, y0, x0;
    coords(tile, b, y0, x0);
#pragma unroll 1
    for (int pass = 0; pass < L::kPasses; ++pass) {
      float c[4][6][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 6; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) c[i][j][e] = 0.f;
        }
      }
#pragma unroll 1
      for (int ks = 0; ks < L::kSteps; ++ks) {
        if (pass == 0 && ks % L::kStepsPerGroup == 0) {
          BarSync(kBarFull + ks / L::kStepsPerGroup, kThreads);
        }
        CopyAsyncWait<kBStages - 2>();
        BarSync(kBarConsumers, kConsumerThreads);
        // Everyone is past the last step: its stage takes the next load.
        load_next_b();
        const T* a_chunk = as + (ks / 2) * (L::kM * L::kChunk);
        const T* b_stage = bs + (consumed++ % kBStages) * L::kBStage;
        // Both k16 halves' fragments first, then their MMAs.
        unsigned bw[2][3][4], a[2][4][4];
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
#pragma unroll
          for (int j = 0; j < 3; ++j) {
            const int n = wn * 48 + j * 16 + lane % 8 + lane / 16 * 8;
            LoadMatrixX4(bw[kk][j],
                         b_stage + SwizzledB(n, kk * 16 + (lane / 8) % 2 * 8));
          }
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int m = wm * 64 + i * 16 + lane % 16;
            LoadMatrixX4(
                a[kk][i],
                a_chunk +
                    SwizzledA(m, (ks % 2) * 32 + kk * 16 + lane / 16 * 8));
          }
        }
        if constexpr (kMode != 2) {
#pragma unroll
          for (int kk = 0; kk < 2; ++kk) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
#pragma unroll
              for (int j = 0; j < 3; ++j) {
                Mma16816(
                    c[i][2 * j], a[kk][i], bw[kk][j][0], bw[kk][j][1], T());
                Mma16816(
                    c[i][2 * j + 1], a[kk][i], bw[kk][j][2], bw[kk][j][3], T());
              }
            }
          }
        } else {
          // Keep the loads alive.
          c[0][0][0] += __uint_as_float(a[0][0][0] & bw[1][2][3] & 1u);
        }
        // The last pass is done with this group of A: the producers may
        // write the next tile's.
        if (pass + 1 == L::kPasses && !last &&
            ks % L::kStepsPerGroup == L::kStepsPerGroup - 1) {
          BarArrive(kBarEmpty + ks / L::kStepsPerGroup, kThreads);
        }
      }
      // + bias, rounded once to T, from the accumulators to y: a lane holds
      // channels col, col + 1 of pixels g and g + 8 of each fragment.
      const int rows_left = H - y0, cols_left = W - x0;
      T* yt = y + static_cast<size_t>(b) * H * W * P +
              (static_cast<size_t>(y0) * W + x0) * P;
#pragma unroll
      for (int j = 0; j < 6; ++j) {
        const int col = pass * L::kN + wn * 48 + j * 8 + 2 * (lane % 4);
        const float2 bias = __ldg(reinterpret_cast<const float2*>(pw_b + col));
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int rr = 0; rr < 2; ++rr) {
            const int p = wm * 64 + i * 16 + lane / 4 + rr * 8;
            const int py = p / L::kTileW, px = p % L::kTileW;
            if (py >= rows_left || px >= cols_left) continue;
            *reinterpret_cast<unsigned*>(yt + (py * W + px) * P + col) =
                PackPair(c[i][j][2 * rr] + bias.x,
                         c[i][j][2 * rr + 1] + bias.y,
                         T());
          }
        }
      }
    }
  }
}

template <typename T, int P, int kMode>
void Launch(const at::Tensor& x,
            const at::Tensor& dw_weight,
            const at::Tensor& dw_bias,
            const at::Tensor& pw_weight,
            const at::Tensor& pw_bias,
            at::Tensor& y) {
  using L = WideLayout<P>;
  auto kernel = WideRefinerBlockKernel<T, P, kMode>;
  cudaError_t error = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kBytes);
  TORCH_CHECK(
      error == cudaSuccess, "WideRefinerBlock: ", cudaGetErrorString(error));
  const int B = static_cast<int>(x.size(0)), H = static_cast<int>(x.size(1)),
            W = static_cast<int>(x.size(2));
  const int tiles_y = (H + L::kTileH - 1) / L::kTileH,
            tiles_x = (W + L::kTileW - 1) / L::kTileW;
  const long long tiles = static_cast<long long>(B) * tiles_y * tiles_x;
  TORCH_CHECK(tiles < (1LL << 31), "WideRefinerBlock: too many tiles");
  if (tiles == 0) return;
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int grid =
      static_cast<int>(std::min<long long>(tiles, static_cast<long long>(sms)));
  kernel<<<grid, kThreads, L::kBytes, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const T*>(x.data_ptr()),
      reinterpret_cast<T*>(y.data_ptr()),
      dw_weight.data_ptr<float>(),
      dw_bias.data_ptr<float>(),
      reinterpret_cast<const T*>(pw_weight.data_ptr()),
      pw_bias.data_ptr<float>(),
      H,
      W,
      tiles_x,
      tiles_y * tiles_x,
      static_cast<int>(tiles));
}

void CheckTensor(const char* name,
                 const at::Tensor& t,
                 const at::Tensor& x,
                 at::ScalarType dtype,
                 at::IntArrayRef sizes) {
  TORCH_CHECK(t.device() == x.device() && t.scalar_type() == dtype &&
                  t.is_contiguous() && t.sizes() == sizes,
              "WideRefinerBlock: ",
              name,
              " must be a contiguous ",
              dtype,
              " tensor of size ",
              sizes,
              " on ",
              x.device(),
              ", got ",
              t.scalar_type(),
              " ",
              t.sizes(),
              " on ",
              t.device());
}

}  // namespace

bool WideRefinerBlockSupported(int64_t channels,
                               int64_t kernel_size,
                               at::ScalarType dtype) {
  return kernel_size == kKernel && channels == 576 &&
         (dtype == at::kHalf || dtype == at::kBFloat16);
}

void WideRefinerBlock(const at::Tensor& x,
                      const at::Tensor& dw_weight,
                      const at::Tensor& dw_bias,
                      const at::Tensor& pw_weight,
                      const at::Tensor& pw_bias,
                      at::Tensor& y) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 4 && x.is_contiguous(),
              "WideRefinerBlock: x must be a contiguous (B, H, W, P) CUDA "
              "tensor");
  const int64_t P = x.size(3);
  TORCH_CHECK(WideRefinerBlockSupported(P, kKernel, x.scalar_type()),
              "WideRefinerBlock: ",
              P,
              " channels of ",
              x.scalar_type(),
              " are not supported (fp16/bf16, 576 channels)");
  CheckTensor("dw_weight", dw_weight, x, at::kFloat, {kKernel * kKernel, P});
  CheckTensor("dw_bias", dw_bias, x, at::kFloat, {P});
  CheckTensor("pw_weight", pw_weight, x, x.scalar_type(), {P, P});
  CheckTensor("pw_bias", pw_bias, x, at::kFloat, {P});
  CheckTensor("y", y, x, x.scalar_type(), x.sizes());
  TORCH_CHECK(y.data_ptr() != x.data_ptr(),
              "WideRefinerBlock: y must not alias x (tiles read their "
              "neighbours' pixels)");
  TORCH_CHECK(x.size(1) * x.size(2) * P < (int64_t{1} << 31),
              "WideRefinerBlock: an image of ",
              x.sizes(),
              " is too large (32-bit offsets)");
  const c10::cuda::CUDAGuard guard(x.device());
  // EXPERIMENT: L2M_WIDE_MODE (0 the block, 2 no MMAs, 3 producers idle).
  static const int mode = [] {
    const char* v = std::getenv("L2M_WIDE_MODE");
    return v ? std::atoi(v) : 0;
  }();
  ForStorageDtype(x, [&](auto tag) {
    using T = decltype(tag);
    switch (mode) {
      case 2:
        return Launch<T, 576, 2>(x, dw_weight, dw_bias, pw_weight, pw_bias, y);
      case 3:
        return Launch<T, 576, 3>(x, dw_weight, dw_bias, pw_weight, pw_bias, y);
      default:
        return Launch<T, 576, 0>(x, dw_weight, dw_bias, pw_weight, pw_bias, y);
    }
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "WideRefinerBlock: ", cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
