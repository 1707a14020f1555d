#include "l2m_core/model/local_correlation_cuda.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>

namespace l2m {
namespace internal {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kMaxChannels = 1024;
constexpr int kMaxWindow = 16;  // (2r + 2) for r <= 7

template <typename T>
__device__ __forceinline__ float ToFloat(T v) {
  return static_cast<float>(v);
}

// Where a query's window lies: its whole-pixel origin (x0, y0) in the
// support and the bilinear fractions (tx, ty) that every offset shares;
// false when the warp target is not finite or far outside (every tap is
// zero padding).
__device__ inline bool LocateWindow(const float* coords,
                                    long long pixel,
                                    int h,
                                    int w,
                                    int radius,
                                    int& x0,
                                    int& y0,
                                    float& tx,
                                    float& ty) {
  const float ix = ((coords[2 * pixel] + 1.f) * w - 1.f) / 2.f;
  const float iy = ((coords[2 * pixel + 1] + 1.f) * h - 1.f) / 2.f;
  if (!isfinite(ix) || !isfinite(iy) || fabsf(ix) > 1e6f || fabsf(iy) > 1e6f) {
    return false;
  }
  const float fx = floorf(ix), fy = floorf(iy);
  tx = ix - fx;
  ty = iy - fy;
  x0 = static_cast<int>(fx) - radius;
  y0 = static_cast<int>(fy) - radius;
  return true;
}

// The query pixel a warp handles and its window.
template <typename T>
struct WarpWindow {
  long long pixel;  // the query pixel, over the batch
  int b;            // its image
  int n, m;         // the window's side 2r + 1, its neighbours' 2r + 2
  int x0, y0;       // the first neighbour (LocateWindow)
  float tx, ty;     // the bilinear fractions every offset shares
  T* out;           // the query's n² outputs
};

// Sets up the warp's query (one warp a pixel, kWarpsPerBlock a block);
// false when the warp has none, or when its window is all zero padding
// (then its outputs are written as zeros).
template <typename T>
__device__ inline bool StartWindow(const float* coords,
                                   T* out,
                                   int B,
                                   int h,
                                   int w,
                                   int radius,
                                   WarpWindow<T>& win) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  win.pixel = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + warp;
  if (win.pixel >= static_cast<long long>(B) * h * w) return false;
  win.b = static_cast<int>(win.pixel / (static_cast<long long>(h) * w));
  win.n = 2 * radius + 1;
  win.m = win.n + 1;
  win.out = out + win.pixel * win.n * win.n;
  if (!LocateWindow(
          coords, win.pixel, h, w, radius, win.x0, win.y0, win.tx, win.ty)) {
    for (int k = lane; k < win.n * win.n; k += 32) {
      win.out[k] = static_cast<T>(0.f);
    }
    return false;
  }
  return true;
}

// The (2r+1)² outputs of one query from the dots with its (2r+2)² whole-pixel
// neighbours: four neighbours blended per offset, the lanes of a warp
// taking the offsets in turn.
template <typename T>
__device__ inline void BlendWindow(
    const float* dots, int radius, float tx, float ty, int lane, T* o) {
  const int n = 2 * radius + 1, m = n + 1;
  for (int k = lane; k < n * n; k += 32) {
    const float* d = dots + (k / n) * m + k % n;
    const float v = (1.f - ty) * ((1.f - tx) * d[0] + tx * d[1]) +
                    ty * ((1.f - tx) * d[m] + tx * d[m + 1]);
    o[k] = static_cast<T>(v);
  }
}

// One warp per query pixel. The window's offsets are whole pixels (steps of
// 2/h, 2/w in normalised coordinates), so every offset of a query shares its
// bilinear weights: the warp takes the dot products of the query vector with
// the (2r+2)² integer neighbours of the warp target once, then blends four of
// them per offset. Features are channels-last (B, h, w, C) so each dot reads
// one contiguous row; accumulation in fp32. grid_sample's bilinear,
// zero-padded, align_corners=False sampling up to rounding.
template <typename T>
__global__ void LocalCorrelationWindow(const T* __restrict__ f0,
                                       const T* __restrict__ f1,
                                       const float* __restrict__ coords,
                                       T* __restrict__ out,
                                       int B,
                                       int C,
                                       int h,
                                       int w,
                                       int radius,
                                       float scale,
                                       int support_offset) {
  __shared__ float query[kWarpsPerBlock][kMaxChannels];
  __shared__ float dots[kWarpsPerBlock][kMaxWindow * kMaxWindow];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  WarpWindow<T> win;
  if (!StartWindow(coords, out, B, h, w, radius, win)) return;
  const long long pixel = win.pixel;
  const int b = win.b, m = win.m, x0 = win.x0, y0 = win.y0;
  const int bs = (b + support_offset) % B;  // the support image

  const T* q = f0 + pixel * C;
  for (int c = lane; c < C; c += 32) query[warp][c] = ToFloat(q[c]) * scale;
  __syncwarp();
  for (int p = lane; p < m * m; p += 32) {
    const int y = y0 + p / m, x = x0 + p % m;
    float dot = 0.f;
    if (y >= 0 && y < h && x >= 0 && x < w) {
      const T* t = f1 + ((static_cast<long long>(bs) * h + y) * w + x) * C;
      // 16-byte loads (rows are 16-byte aligned when C is a multiple of V).
      constexpr int V = 16 / sizeof(T);
      int c = 0;
      if (C % V == 0) {
        for (; c < C; c += V) {
          const uint4 raw = *reinterpret_cast<const uint4*>(t + c);
          const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
          for (int v = 0; v < V; ++v) dot += query[warp][c + v] * ToFloat(e[v]);
        }
      }
      for (; c < C; ++c) dot += query[warp][c] * ToFloat(t[c]);
    }
    dots[warp][p] = dot;
  }
  __syncwarp();
  BlendWindow(dots[warp], radius, win.tx, win.ty, lane, win.out);
}

// The same correlation with the loads coalesced, for channel counts that
// fill 16-byte vectors (C = V·32·k, k ≤ 4): the warp reads each neighbour's
// row together (lane l takes vectors l, l + 32, ...), keeps per-lane partial
// dots of 32 neighbours in shared memory and sums them by column, instead of
// every lane walking its own row (32 scattered rows per load).
constexpr int kChunk = 32;  // neighbours a round

template <typename T, int kVecs>
__global__ void LocalCorrelationCoalesced(const T* __restrict__ f0,
                                          const T* __restrict__ f1,
                                          const float* __restrict__ coords,
                                          T* __restrict__ out,
                                          int B,
                                          int C,
                                          int h,
                                          int w,
                                          int radius,
                                          float scale,
                                          int support_offset) {
  constexpr int V = 16 / sizeof(T);
  __shared__ float partial[kWarpsPerBlock][kChunk][kChunk + 1];
  __shared__ float dots[kWarpsPerBlock][kMaxWindow * kMaxWindow];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  WarpWindow<T> win;
  if (!StartWindow(coords, out, B, h, w, radius, win)) return;
  const long long pixel = win.pixel;
  const int b = win.b, m = win.m, x0 = win.x0, y0 = win.y0;
  const int bs = (b + support_offset) % B;  // the support image

  const int vectors = C / V;  // ≤ 32·kVecs
  float q[kVecs][V];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int v = lane + 32 * j;
    if (v < vectors) {
      const uint4 raw =
          __ldg(reinterpret_cast<const uint4*>(f0 + pixel * C) + v);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int k = 0; k < V; ++k) q[j][k] = ToFloat(e[k]) * scale;
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) q[j][k] = 0.f;
    }
  }
  // The support image's rows as 16-byte vectors, this lane's first one;
  // rows are addressed with 32-bit offsets (the caller checks h·w·C < 2³¹)
  // and the window walked with running coordinates: ncu showed this kernel
  // bound by instruction issue (80 %), ~80 instructions a neighbour, most
  // of them a division by the window's side and 64-bit address arithmetic.
  const uint4* support = reinterpret_cast<const uint4*>(
                             f1 + static_cast<long long>(bs) * h * w * C) +
                         lane;
  int y = y0, x = x0;  // the next neighbour, row-major over the window
  for (int first = 0; first < m * m; first += kChunk) {
    const int count = min(kChunk, m * m - first);
#pragma unroll 4
    for (int i = 0; i < count; ++i) {
      float dot = 0.f;
      if (static_cast<unsigned>(y) < static_cast<unsigned>(h) &&
          static_cast<unsigned>(x) < static_cast<unsigned>(w)) {
        const uint4* t = support + (y * w + x) * vectors;
#pragma unroll
        for (int j = 0; j < kVecs; ++j) {
          const int v = lane + 32 * j;
          if (v < vectors) {
            const uint4 raw = __ldg(t + 32 * j);
            const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
            for (int k = 0; k < V; ++k) dot += q[j][k] * ToFloat(e[k]);
          }
        }
      }
      partial[warp][i][lane] = dot;
      if (++x == x0 + m) x = x0, ++y;
    }
    __syncwarp();
    if (lane < count) {
      float sum = 0.f;
#pragma unroll 8
      for (int l = 0; l < 32; ++l) sum += partial[warp][lane][l];
      dots[warp][first + lane] = sum;
    }
    __syncwarp();
  }
  BlendWindow(dots[warp], radius, win.tx, win.ty, lane, win.out);
}

}  // namespace

bool HaveLocalCorrelationKernel() { return true; }

at::Tensor LocalCorrelationKernel(const at::Tensor& f0,
                                  const at::Tensor& f1,
                                  const at::Tensor& coords,
                                  int radius,
                                  int64_t support_offset) {
  TORCH_CHECK(f0.is_cuda() && f1.is_cuda() && coords.is_cuda(),
              "LocalCorrelationKernel: CUDA tensors expected");
  TORCH_CHECK(
      f0.dim() == 4 && f0.sizes() == f1.sizes(),
      "LocalCorrelationKernel: f0, f1 must be (B, C, h, w) of one size");
  TORCH_CHECK(f0.scalar_type() == f1.scalar_type(),
              "LocalCorrelationKernel: f0 and f1 must share a dtype");
  TORCH_CHECK(coords.scalar_type() == at::kFloat,
              "LocalCorrelationKernel: float32 coordinates expected");
  const int B = static_cast<int>(f0.size(0)), C = static_cast<int>(f0.size(1));
  const int h = static_cast<int>(f0.size(2)), w = static_cast<int>(f0.size(3));
  TORCH_CHECK(C <= kMaxChannels && 2 * radius + 2 <= kMaxWindow && radius >= 0,
              "LocalCorrelationKernel: at most ",
              kMaxChannels,
              " channels and radius 7");
  TORCH_CHECK(static_cast<int64_t>(h) * w * C < (int64_t{1} << 31),
              "LocalCorrelationKernel: a ",
              h,
              "×",
              w,
              "×",
              C,
              " feature map is too large (32-bit offsets)");
  TORCH_CHECK(support_offset >= 0 && support_offset < std::max(B, 1),
              "LocalCorrelationKernel: support_offset ",
              support_offset,
              " outside [0, ",
              B,
              ")");
  const c10::cuda::CUDAGuard guard(f0.device());
  // Channels-last rows: a no-op for channels-last inputs.
  const at::Tensor a = f0.permute({0, 2, 3, 1}).contiguous();
  const at::Tensor s = f1.permute({0, 2, 3, 1}).contiguous();
  const at::Tensor g = coords.contiguous();  // (B, h, w, 2)
  const int n = 2 * radius + 1;
  // Written (B, h, w, n²): returned as a channels-last (B, n², h, w) view.
  at::Tensor out = at::empty({B, h, w, n * n}, a.options());
  const long long pixels = static_cast<long long>(B) * h * w;
  if (pixels > 0) {
    const unsigned blocks =
        static_cast<unsigned>((pixels + kWarpsPerBlock - 1) / kWarpsPerBlock);
    const float scale = 1.f / std::sqrt(static_cast<float>(C));
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, a.scalar_type(), "LocalCorrelation", [&] {
          constexpr int V = 16 / sizeof(scalar_t);
          const int vectors = C / V;
          // Both kernels take the same arguments.
          auto launch = [&](auto kernel) {
            kernel<<<blocks,
                     kWarpsPerBlock * 32,
                     0,
                     c10::cuda::getCurrentCUDAStream()>>>(
                a.data_ptr<scalar_t>(),
                s.data_ptr<scalar_t>(),
                g.data_ptr<float>(),
                out.data_ptr<scalar_t>(),
                B,
                C,
                h,
                w,
                radius,
                scale,
                static_cast<int>(support_offset));
          };
          if (C % V != 0 || vectors > 128) {
            launch(LocalCorrelationWindow<scalar_t>);
          } else if (vectors <= 32) {
            launch(LocalCorrelationCoalesced<scalar_t, 1>);
          } else if (vectors <= 64) {
            launch(LocalCorrelationCoalesced<scalar_t, 2>);
          } else {
            launch(LocalCorrelationCoalesced<scalar_t, 4>);
          }
        });
    const cudaError_t error = cudaGetLastError();
    TORCH_CHECK(error == cudaSuccess,
                "LocalCorrelationKernel: ",
                cudaGetErrorString(error));
  }
  return out.permute({0, 3, 1, 2});
}

}  // namespace internal
}  // namespace l2m
