#include "l2m_core/model/refiner_block_cuda.h"
#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <iterator>
#include <type_traits>

namespace l2m {
namespace internal {
namespace {

constexpr int kKernel = 5;
constexpr int kHalo = kKernel / 2;

// 4 consecutive channels = 8 bytes, unpacked to float and back.
__device__ inline void ToFloat4(const uint2& raw, float* f, __half) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
  const float2 a = __half22float2(h[0]), b = __half22float2(h[1]);
  f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
}

__device__ inline void ToFloat4(const uint2& raw, float* f, __nv_bfloat16) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
  const float2 a = __bfloat1622float2(h[0]), b = __bfloat1622float2(h[1]);
  f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
}

__device__ inline uint2 FromFloat4(const float* f, __half) {
  uint2 raw;
  __half2* h = reinterpret_cast<__half2*>(&raw);
  h[0] = __floats2half2_rn(f[0], f[1]);
  h[1] = __floats2half2_rn(f[2], f[3]);
  return raw;
}

__device__ inline uint2 FromFloat4(const float* f, __nv_bfloat16) {
  uint2 raw;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
  h[0] = __floats2bfloat162_rn(f[0], f[1]);
  h[1] = __floats2bfloat162_rn(f[2], f[3]);
  return raw;
}

// kCh consecutive channels (4: 8 bytes, 2: 4 bytes) unpacked to float.
template <int kCh, typename T>
__device__ inline void LoadChannels(const T* p, float* f) {
  if constexpr (kCh == 4) {
    ToFloat4(*reinterpret_cast<const uint2*>(p), f, T());
  } else {
    static_assert(kCh == 2, "2 or 4 channels a thread");
    if constexpr (std::is_same_v<T, __half>) {
      const float2 a = __half22float2(*reinterpret_cast<const __half2*>(p));
      f[0] = a.x, f[1] = a.y;
    } else {
      const float2 a =
          __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
      f[0] = a.x, f[1] = a.y;
    }
  }
}

// kCh consecutive floats, through the read-only cache (kShared: from
// shared memory, where __ldg does not apply).
template <int kCh, bool kShared = false>
__device__ inline void LoadWeights(const float* p, float* f) {
  if constexpr (kCh == 4) {
    const float4 v = kShared ? *reinterpret_cast<const float4*>(p)
                             : __ldg(reinterpret_cast<const float4*>(p));
    f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
  } else {
    const float2 v = kShared ? *reinterpret_cast<const float2*>(p)
                             : __ldg(reinterpret_cast<const float2*>(p));
    f[0] = v.x, f[1] = v.y;
  }
}

// kCh floats rounded to T and stored as one 8- or 4-byte word.
template <int kCh, typename T>
__device__ inline void StoreChannels(T* p, const float* f) {
  if constexpr (kCh == 4) {
    *reinterpret_cast<uint2*>(p) = FromFloat4(f, T());
  } else {
    *reinterpret_cast<unsigned*>(p) = PackPair(f[0], f[1], T());
  }
}

// The depthwise work of one thread: kRows × kCols pixels × kCh channels;
// kPreload: all 25 taps held in registers (2 channels: 50 floats) rather
// than loaded per kernel row.
template <int kRows_, int kCols_, int kCh_, bool kPreload_>
struct DwTile {
  static constexpr int kRows = kRows_, kCols = kCols_, kCh = kCh_;
  static constexpr bool kPreload = kPreload_;
  static constexpr int kPixels = kRows * kCols;
};

// relu(depthwise 5×5 + bias) of one thread's tile (D), fp32, from a halo
// tile in shared memory: kHaloWidth pixels a row, kPixelStride elements a
// pixel, `window` at the channel group of the thread's top-left input pixel;
// `taps` (25 rows of tap_stride floats) and `bias` at the same channel
// group. The halo rows are read once each, top to bottom, and every row
// feeds all the output rows whose window it is in, so each input is
// converted to float once rather than once per kernel row (the fp16 → fp32
// conversions were 240 of a thread's 1,750 instructions, SASS on an H100).
// Every output still sums bias, then the taps in (ky, kx) order: all tile
// shapes give the same bits.
template <typename T,
          int kHaloWidth,
          int kPixelStride,
          typename D,
          bool kSharedWeights = false>
__device__ inline void DepthwiseReluTile(
    const T* window,
    const float* taps,
    int tap_stride,
    const float* bias,
    float (&acc)[D::kRows][D::kCols][D::kCh]) {
  constexpr int kRows = D::kRows, kCols = D::kCols, kCh = D::kCh;
  float b[kCh];
  LoadWeights<kCh, kSharedWeights>(bias, b);
#pragma unroll
  for (int ry = 0; ry < kRows; ++ry) {
#pragma unroll
    for (int rx = 0; rx < kCols; ++rx) {
#pragma unroll
      for (int j = 0; j < kCh; ++j) acc[ry][rx][j] = b[j];
    }
  }
  float preloaded[D::kPreload ? kKernel * kKernel : 1][kCh];
  if constexpr (D::kPreload) {
#pragma unroll
    for (int t = 0; t < kKernel * kKernel; ++t) {
      LoadWeights<kCh, kSharedWeights>(taps + t * tap_stride, preloaded[t]);
    }
  }
  // Applies kernel row ky to output row ry from one converted input row.
  auto apply = [&](int ry, int ky, const float(&in)[kCols + kKernel - 1][kCh]) {
    float w[kKernel][kCh];
#pragma unroll
    for (int kx = 0; kx < kKernel; ++kx) {
      if constexpr (D::kPreload) {
#pragma unroll
        for (int j = 0; j < kCh; ++j)
          w[kx][j] = preloaded[ky * kKernel + kx][j];
      } else {
        LoadWeights<kCh, kSharedWeights>(
            taps + (ky * kKernel + kx) * tap_stride, w[kx]);
      }
    }
#pragma unroll
    for (int rx = 0; rx < kCols; ++rx) {
#pragma unroll
      for (int kx = 0; kx < kKernel; ++kx) {
#pragma unroll
        for (int j = 0; j < kCh; ++j) {
          acc[ry][rx][j] = fmaf(in[rx + kx][j], w[kx][j], acc[ry][rx][j]);
        }
      }
    }
  };
#pragma unroll
  for (int iy = 0; iy < kRows + kKernel - 1; ++iy) {
    float in[kCols + kKernel - 1][kCh];
    const T* row = window + iy * kHaloWidth * kPixelStride;
#pragma unroll
    for (int c = 0; c < kCols + kKernel - 1; ++c) {
      LoadChannels<kCh>(row + c * kPixelStride, in[c]);
    }
#pragma unroll
    for (int ky = 0; ky < kKernel; ++ky) {
      const int ry = iy - ky;
      if (ry >= 0 && ry < kRows) apply(ry, ky, in);
    }
  }
#pragma unroll
  for (int ry = 0; ry < kRows; ++ry) {
#pragma unroll
    for (int rx = 0; rx < kCols; ++rx) {
#pragma unroll
      for (int j = 0; j < kCh; ++j) acc[ry][rx][j] = fmaxf(acc[ry][rx][j], 0.f);
    }
  }
}

// Starts copying 25 taps and the bias (rows of dw_w, then dw_b, P apart,
// already at the first channel) into shared memory: 26 rows of kVectors
// 16-byte vectors, those from `vectors` on skipped (a partial chunk). The
// copies join the caller's next committed group.
template <int kVectors>
__device__ inline void LoadTapsAsync(float* ts,
                                     const float* dw_w,
                                     const float* dw_b,
                                     int P,
                                     int vectors,
                                     int thread,
                                     int threads) {
  for (int i = thread; i < 26 * kVectors; i += threads) {
    const int t = i / kVectors, v = i % kVectors;
    if (v >= vectors) continue;
    const float* src = t < 25 ? dw_w + t * P + v * 4 : dw_b + v * 4;
    CopyAsync16(ts + (t * kVectors + v) * 4, src, true);
  }
}

// Starts the asynchronous copy of a tile's halo, kHaloH × kHaloW pixels
// from (y0 − 2, x0 − 2) of kV 16-byte vectors each (those from `vectors`
// on are skipped: a partial channel chunk), into shared memory with
// kPixelStride elements a pixel; zeros outside the image. xb: the image's
// first pixel at the channel group, P its channels.
//
// A thread owns one (halo column, vector) and copies it for every kGroups-th
// row, so the column's bounds check, source offset and shared address are
// worked out once and each row adds a constant. The address arithmetic, not
// the copies, is what these loads cost: with a thread per copy, every copy
// took ~30 instructions of division, 64-bit offsets and bounds checks (SASS:
// ~300 of the wide depthwise kernel's 1,800 instructions a thread, the
// kernel being bound by instruction issue). 32-bit offsets inside the image:
// the callers check H·W·P < 2³¹.
template <typename T,
          int kHaloH,
          int kHaloW,
          int kPixelStride,
          int kV,
          int kThreadCount>
__device__ inline void LoadHaloAsync(T* hs,
                                     const T* xb,
                                     int H,
                                     int W,
                                     int P,
                                     int vectors,
                                     int y0,
                                     int x0,
                                     int thread = threadIdx.x) {
  constexpr int kColumns = kHaloW * kV;  // (column, vector) pairs
  constexpr int kGroups =
      kColumns >= kThreadCount ? 1 : kThreadCount / kColumns;
  constexpr int kRowsPerGroup = (kHaloH + kGroups - 1) / kGroups;
  constexpr int kPasses =
      (kColumns * kGroups + kThreadCount - 1) / kThreadCount;
  const unsigned row_stride = static_cast<unsigned>(W) * P;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int c = thread + pass * kThreadCount;
    if ((kColumns * kGroups) % kThreadCount != 0 && c >= kColumns * kGroups) {
      break;
    }
    const int g = c / kColumns, px = c % kColumns / kV, v = c % kV;
    if (v >= vectors) continue;
    const int gx = x0 + px - kHalo;
    const bool column_inside =
        static_cast<unsigned>(gx) < static_cast<unsigned>(W);
    const int gy0 = y0 + g - kHalo;
    // Unsigned: rows above or below the image wrap harmlessly (never read).
    const unsigned offset0 = static_cast<unsigned>(gy0) * row_stride +
                             static_cast<unsigned>(gx * P + v * 8);
    T* dst = hs + (g * kHaloW + px) * kPixelStride + v * 8;
#pragma unroll
    for (int k = 0; k < kRowsPerGroup; ++k) {
      if (kHaloH % kGroups != 0 && g + k * kGroups >= kHaloH) break;
      const int gy = gy0 + k * kGroups;
      const bool inside =
          column_inside && static_cast<unsigned>(gy) < static_cast<unsigned>(H);
      const unsigned offset = offset0 + k * kGroups * row_stride;
      CopyAsync16(dst + k * kGroups * kHaloW * kPixelStride,
                  xb + (inside ? offset : 0u),
                  inside);
    }
  }
  CopyAsyncCommit();
}

// The tile shape and block size per padded channel count KP: 8×8 pixels for
// wide blocks, 16×16 for narrow ones (so every thread has work). The block
// has a thread per 32 of the tile's depthwise outputs (how a thread splits
// its share is FusedDwTile); every warp then owns four GEMM fragments of
// one output column.
template <int KP>
struct Shape {
  static constexpr int kTile = KP <= 64 ? 16 : 8;
  static constexpr int kThreads = (kTile / 4) * (kTile / 2) * (KP / 4);
  // Tile pipelines a block (groups of kThreads threads, each with its own
  // A and halo buffers and its own barrier), sharing one copy of the 1×1
  // weights. Wide tiles (KP > 64): three in one block an SM, since two
  // blocks of one (the shared memory's limit, weights copied per block)
  // left the kernel latency-bound at 18 warps an SM (ncu: 52 % of issue
  // slots, stalls on its barriers and loads).
  static constexpr int kGroups = KP <= 64 ? 1 : 3;
  // Blocks an SM to compile for (the register budget). One-group blocks:
  // two; three would spill (2× slower at 144 channels; at 24, 1.22 → 1.18
  // ms a block for two against three, H100).
  static constexpr int kMinBlocks = kGroups == 1 ? 2 : 1;
  // Narrow blocks keep the 25 taps and the bias in shared memory, copied
  // once a block: at 24 channels (scale 1 of 864², 8 pairs, H100) 0.83 →
  // 0.75 ms against preloading them from global memory per tile. At 144
  // they do not fit beside three pipelines, and two pipelines with them
  // were no faster.
  static constexpr bool kSharedTaps = KP <= 64;
  static constexpr int kWarps = kThreads / 32;
  static constexpr int kFragmentsPerWarp = 4;
  static_assert((kTile * kTile / 16) * (KP / 16) == kWarps * kFragmentsPerWarp,
                "every warp owns four GEMM fragments");
};

// Shared memory of one thread block, in T elements:
//   w     [KP][KP + 8]        1×1 weights, row n = output channel (B col-major)
// and per tile pipeline (Shape::kGroups of them)
//   a     [TH·TW][KP + 8]     relu(depthwise + bias) of the tile (A row-major)
//   halo  [(TH+4)(TW+4)][P]   the input tile with its 2-pixel border
// then, where Shape::kSharedTaps, 26 × P floats: the taps and the bias.
// The +8 row padding keeps the ldmatrix rows of a fragment on distinct
// banks. At 144 channels three pipelines take 221 KB of the SM's 227.
template <typename T, int P>
struct Layout {
  static constexpr int KP = (P + 15) / 16 * 16;  // the GEMM's K and N
  static constexpr int kTile = Shape<KP>::kTile;
  static constexpr int kM = kTile * kTile;
  static constexpr int kLdw = KP + 8, kLda = KP + 8;
  static constexpr int kHaloPixels = (kTile + 2 * kHalo) * (kTile + 2 * kHalo);
  static constexpr size_t kGroupElements =
      static_cast<size_t>(kM) * kLda + static_cast<size_t>(kHaloPixels) * P;
  static constexpr size_t kTapsOffset =
      (static_cast<size_t>(KP) * kLdw + Shape<KP>::kGroups * kGroupElements) *
      sizeof(T);
  static constexpr size_t kBytes =
      kTapsOffset + (Shape<KP>::kSharedTaps ? 26 * P * sizeof(float) : 0);
};

template <typename T, int P>
constexpr int kBlockThreads =
    Shape<Layout<T, P>::KP>::kThreads* Shape<Layout<T, P>::KP>::kGroups;

// The last block's epilogue (RefinerBlockKernel<..., kOut = true>): each
// lane dots its 4 channels of the block's output (rounded to T) with the
// out_conv weights, the 4 lanes of a pixel row sum by shuffles, each warp
// (one 16-channel column) leaves its partial sums in the pixel's row of A
// (within its first P channels: the K padding after them stays zero), and
// a thread a (pixel, output) adds the columns in order, the bias last.
template <typename T, int P, int kF, typename Sync>
__device__ inline void OutConvEpilogue(const float (&c)[kF][2][4],
                                       float2 bias0,
                                       float2 bias1,
                                       bool upper,
                                       int col,
                                       int warp,
                                       int lane,
                                       int tid,
                                       T* as,
                                       const float* __restrict__ out_w,
                                       const float* __restrict__ out_b,
                                       float* __restrict__ out,
                                       int out_dim,
                                       int b,
                                       int y0,
                                       int x0,
                                       int H,
                                       int W,
                                       Sync sync_group) {
  using L = Layout<T, P>;
  constexpr int KP = L::KP, kTile = L::kTile, kM = L::kM;
  constexpr int kNf = KP / 16;
  constexpr int kWarps = Shape<KP>::kWarps;
  constexpr int kThreads = Shape<KP>::kThreads;
  constexpr int kOuts = kRefinerOutConvMaxOut;
  static_assert(kNf * kOuts * sizeof(float) <= P * sizeof(T),
                "a pixel's partial sums fit its row of A");
  const int ni = warp % kNf;
  float partial[kF][2][kOuts];
#pragma unroll
  for (int o = 0; o < kOuts; ++o) {
    float w[4] = {0.f, 0.f, 0.f, 0.f};
    if (o < out_dim) {
      const float2 lo =
          __ldg(reinterpret_cast<const float2*>(out_w + o * P + col));
      w[0] = lo.x, w[1] = lo.y;
      if (upper) {
        const float2 hi =
            __ldg(reinterpret_cast<const float2*>(out_w + o * P + col + 8));
        w[2] = hi.x, w[3] = hi.y;
      }
    }
#pragma unroll
    for (int j = 0; j < kF; ++j) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float s = Round<T>(c[j][0][2 * r] + bias0.x) * w[0];
        s = fmaf(Round<T>(c[j][0][2 * r + 1] + bias0.y), w[1], s);
        if (upper) {
          s = fmaf(Round<T>(c[j][1][2 * r] + bias1.x), w[2], s);
          s = fmaf(Round<T>(c[j][1][2 * r + 1] + bias1.y), w[3], s);
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        partial[j][r][o] = s;
      }
    }
  }
  // Every warp is done reading A (its GEMM); the partials take its place.
  sync_group();
  auto part = [&](int p) { return reinterpret_cast<float*>(as + p * L::kLda); };
  if (lane % 4 == 0) {
#pragma unroll
    for (int j = 0; j < kF; ++j) {
      const int mi = (warp + kWarps * j) / kNf;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int p = mi * 16 + lane / 4 + r * 8;
        *reinterpret_cast<float4*>(part(p) + ni * kOuts) =
            make_float4(partial[j][r][0],
                        partial[j][r][1],
                        partial[j][r][2],
                        partial[j][r][3]);
      }
    }
  }
  sync_group();
  const int plane = H * W;
  for (int i = tid; i < kM * out_dim; i += kThreads) {
    const int p = i / out_dim, o = i % out_dim;
    const int py = p / kTile, px = p % kTile;
    if (y0 + py >= H || x0 + px >= W) continue;
    float s = 0.f;
#pragma unroll
    for (int n = 0; n < kNf; ++n) s += part(p)[n * kOuts + o];
    out[(static_cast<size_t>(b) * out_dim + o) * plane + (y0 + py) * W + x0 +
        px] = s + __ldg(out_b + o);
  }
  // The next tile's depthwise writes A only after the loop's barrier.
}

// A persistent grid: each block loads the weights once, then walks the
// (batch, tile row, tile column) tiles in raster order, so neighbouring
// tiles (which share halo rows) run at about the same time and the halo
// re-reads hit L2. The next tile's halo is in flight while this tile's
// GEMM runs (the GEMM reads only the depthwise result), and the GEMM's
// accumulators go from registers straight to y (no float tile in shared
// memory). A thread's depthwise tile: FusedDwTile.
//
// kOut: the refiner's last block, whose output only its out_conv reads: the
// epilogue applies the out_conv (float32, on the block's output rounded to
// T, as RefinerOutConv reads it) and writes out (B, out_dim, H, W) instead
// of y, so the activations never go to memory and back (at 864², 8 pairs:
// 0.86 GB at scale 2 written and read again).
template <typename T, int P, typename Dw, bool kOut>
__global__ void __launch_bounds__(kBlockThreads<T, P>,
                                  Shape<Layout<T, P>::KP>::kMinBlocks)
    RefinerBlockKernel(const T* __restrict__ x,
                       T* __restrict__ y,
                       const float* __restrict__ dw_w,
                       const float* __restrict__ dw_b,
                       const T* __restrict__ pw_w,
                       const float* __restrict__ pw_b,
                       const float* __restrict__ out_w,
                       const float* __restrict__ out_b,
                       float* __restrict__ out,
                       int out_dim,
                       int H,
                       int W,
                       int tiles_y,
                       int tiles_x,
                       int tiles) {
  using L = Layout<T, P>;
  constexpr int KP = L::KP;
  constexpr int kThreads = Shape<KP>::kThreads;
  constexpr int kGroups = Shape<KP>::kGroups;
  constexpr int kTile = L::kTile;
  constexpr int kHW = kTile + 2 * kHalo;
  constexpr int kM = L::kM;
  extern __shared__ __align__(128) unsigned char smem[];
  // This thread's tile pipeline and its place in it.
  const int group = kGroups == 1 ? 0 : threadIdx.x / kThreads;
  const int tid = kGroups == 1 ? threadIdx.x : threadIdx.x % kThreads;
  T* ws = reinterpret_cast<T*>(smem);
  T* as = ws + KP * L::kLdw + group * L::kGroupElements;
  T* hs = as + kM * L::kLda;
  constexpr int V = P / 8;  // 16-byte vectors per pixel
  // The group's barrier (0 is the block's): named barriers let the
  // pipelines run out of step.
  auto sync_group = [&] {
    if constexpr (kGroups == 1) {
      __syncthreads();
    } else {
      asm volatile("bar.sync %0, %1;\n" ::"r"(group + 1), "n"(kThreads)
                   : "memory");
    }
  };

  // With the first tile's halo (one pipeline a block).
  float* ts = reinterpret_cast<float*>(smem + L::kTapsOffset);
  if constexpr (Shape<KP>::kSharedTaps) {
    static_assert(kGroups == 1, "shared taps with one pipeline");
    LoadTapsAsync<P / 4>(
        ts, dw_w, dw_b, P, P / 4, threadIdx.x, kThreads * kGroups);
  }
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int i = threadIdx.x; i < KP * (KP / 8); i += kThreads * kGroups) {
    const int n = i / (KP / 8), kv = i % (KP / 8);
    uint4 v = zero;
    if (n < P && kv < V) {
      v = __ldg(
          reinterpret_cast<const uint4*>(pw_w + static_cast<size_t>(n) * P) +
          kv);
    }
    reinterpret_cast<uint4*>(ws + n * L::kLdw)[kv] = v;
  }
  // A's columns [P, KP) stay zero for every tile (K padding of the GEMM).
  for (int i = tid; i < kM * (KP / 8); i += kThreads) {
    reinterpret_cast<uint4*>(as + (i / (KP / 8)) * L::kLda)[i % (KP / 8)] =
        zero;
  }

  // The GEMM's warp layout: a warp owns one 16-channel output column (two
  // m16n8k16 tiles wide) of four 16-pixel row tiles. The column's upper
  // half is skipped where it is all K padding (24 channels in 32).
  constexpr int kNf = KP / 16;
  constexpr int kWarps = Shape<KP>::kWarps;
  constexpr int kF = Shape<KP>::kFragmentsPerWarp;
  const int warp = tid / 32, lane = tid % 32;
  const int ni = warp % kNf;
  // Warp-uniform; a constant where P fills whole columns, so that the MMAs
  // are not predicated (predicated ones cost a WARPSYNC each).
  const bool upper = P % 16 == 0 || ni * 16 + 8 < P;
  const int col = ni * 16 + 2 * (lane % 4);

  // A tile's (image, top row, left column), worked out once per tile (run-
  // time divisions cost ~25 instructions each) when its halo is requested.
  const unsigned per_image = tiles_y * tiles_x;
  int next_b = 0, next_y0 = 0, next_x0 = 0;
  auto load_halo = [&](int tile) {
    const unsigned t = tile, in_image = t % per_image;
    next_b = static_cast<int>(t / per_image);
    next_y0 = static_cast<int>(in_image / tiles_x) * kTile;
    next_x0 = static_cast<int>(in_image % tiles_x) * kTile;
    LoadHaloAsync<T, kHW, kHW, P, V, kThreads>(
        hs,
        x + static_cast<size_t>(next_b) * H * W * P,
        H,
        W,
        P,
        V,
        next_y0,
        next_x0,
        tid);
  };
  // The weights are in for every pipeline.
  if constexpr (kGroups > 1) __syncthreads();
  const int first = blockIdx.x * kGroups + group;
  const int step = gridDim.x * kGroups;
  if (first < tiles) load_halo(first);
  for (int tile = first; tile < tiles; tile += step) {
    const int b = next_b, y0 = next_y0, x0 = next_x0;
    // The halo is in, and the last tile's GEMM is done reading A.
    CopyAsyncWait<0>();
    sync_group();

    // Depthwise 5×5 + bias + ReLU into A, a thread Dw's pixels × channels.
    constexpr int kRows = Dw::kRows, kCols = Dw::kCols, kCh = Dw::kCh;
    constexpr int kBlocksX = kTile / kCols,
                  kBlocks = kBlocksX * (kTile / kRows);
    constexpr int Q = P / kCh;  // channel groups per pixel
    for (int i = tid; i < kBlocks * Q; i += kThreads) {
      const int q = i / Q, h = i % Q;
      const int qy = q / kBlocksX * kRows, qx = q % kBlocksX * kCols;
      float acc[kRows][kCols][kCh];
      constexpr bool kShared = Shape<KP>::kSharedTaps;
      DepthwiseReluTile<T, kHW, P, Dw, kShared>(
          hs + (qy * kHW + qx) * P + h * kCh,
          (kShared ? ts : dw_w) + h * kCh,
          P,
          (kShared ? ts + 25 * P : dw_b) + h * kCh,
          acc);
#pragma unroll
      for (int ry = 0; ry < kRows; ++ry) {
#pragma unroll
        for (int rx = 0; rx < kCols; ++rx) {
          const int p = (qy + ry) * kTile + qx + rx;
          StoreChannels<kCh>(as + p * L::kLda + h * kCh, acc[ry][rx]);
        }
      }
    }
    sync_group();  // A is complete; the halo buffer is free
    if (tile + step < tiles) load_halo(tile + step);

    // The 1×1 conv: C (M × KP) = A (M × KP) · Wᵀ on the tensor cores.
    float c[kF][2][4];
#pragma unroll
    for (int j = 0; j < kF; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) c[j][0][e] = c[j][1][e] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < KP / 16; ++k) {
      // Matrices (n 0–7, k 0–7), (n 0–7, k 8–15), (n 8–15, k 0–7),
      // (n 8–15, k 8–15): b0, b1 of the lower and of the upper n8 tile.
      unsigned bw[4];
      LoadMatrixX4(bw,
                   ws + (ni * 16 + lane % 8 + lane / 16 * 8) * L::kLdw +
                       k * 16 + (lane / 8) % 2 * 8);
#pragma unroll
      for (int j = 0; j < kF; ++j) {
        const int mi = (warp + kWarps * j) / kNf;
        unsigned a[4];
        LoadMatrixX4(
            a, as + (mi * 16 + lane % 16) * L::kLda + k * 16 + lane / 16 * 8);
        Mma16816(c[j][0], a, bw[0], bw[1], T());
        if (upper) Mma16816(c[j][1], a, bw[2], bw[3], T());
      }
    }

    // + bias, rounded once to T, from the accumulators straight to y: a
    // lane holds channels col, col + 1 (and + 8) of pixels g and g + 8.
    // One 64-bit base a tile, then 32-bit offsets (H·W·P < 2³¹).
    const int rows_left = H - y0, cols_left = W - x0;
    const float2 bias0 = __ldg(reinterpret_cast<const float2*>(pw_b + col));
    const float2 bias1 =
        upper ? __ldg(reinterpret_cast<const float2*>(pw_b + col + 8))
              : make_float2(0.f, 0.f);
    if constexpr (kOut) {
      OutConvEpilogue<T, P>(c,
                            bias0,
                            bias1,
                            upper,
                            col,
                            warp,
                            lane,
                            tid,
                            as,
                            out_w,
                            out_b,
                            out,
                            out_dim,
                            b,
                            y0,
                            x0,
                            H,
                            W,
                            sync_group);
      continue;
    }
    T* yt = y + static_cast<size_t>(b) * H * W * P +
            (static_cast<size_t>(y0) * W + x0) * P + col;
#pragma unroll
    for (int j = 0; j < kF; ++j) {
      const int mi = (warp + kWarps * j) / kNf;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int p = mi * 16 + lane / 4 + r * 8;
        const int py = p / kTile, px = p % kTile;
        if (py >= rows_left || px >= cols_left) continue;
        unsigned* out = reinterpret_cast<unsigned*>(yt + (py * W + px) * P);
        out[0] = PackPair(
            c[j][0][2 * r] + bias0.x, c[j][0][2 * r + 1] + bias0.y, T());
        if (upper) {
          out[4] = PackPair(
              c[j][1][2 * r] + bias1.x, c[j][1][2 * r + 1] + bias1.y, T());
        }
      }
    }
  }
}

// A thread's depthwise tile in the one-kernel block, per width (2 channels:
// half the registers of 4 for the same pixels, so taller tiles fit). Against
// 2 × 4 pixels × 4 channels with the taps' rows outer (l2m_kernel_bench,
// 8 pairs, H100, same binary): at 144 channels 4 × 4 × 2 with taps loaded
// per row, 1.67 → 1.55 ms at 864² (the taps preloaded spill there); at 24,
// 2 × 4 × 2 with the taps preloaded, 1.03 → 0.89 ms.
//
// Three pipelines a block (KP > 64) leave 72–80 registers a thread, where
// 4 × 4 × 2 spills (264 bytes at 144 channels): 2 × 4 × 2 there, two
// passes a tile.
template <typename T, int P>
using FusedDwTile = std::conditional_t<(Layout<T, P>::KP <= 64),
                                       DwTile<2, 4, 2, true>,
                                       DwTile<2, 4, 2, false>>;

// What a launch writes: y (the block's output), or for a refiner's last
// block out = out_conv(y) (kOut).
struct Outputs {
  void* y = nullptr;
  const float* out_w = nullptr;
  const float* out_b = nullptr;
  float* out = nullptr;
  int out_dim = 0;
};

template <typename T, int P, bool kOut>
void Launch(const at::Tensor& x,
            const at::Tensor& dw_weight,
            const at::Tensor& dw_bias,
            const at::Tensor& pw_weight,
            const at::Tensor& pw_bias,
            const Outputs& o) {
  using L = Layout<T, P>;
  constexpr int kGroups = Shape<L::KP>::kGroups;
  constexpr int kThreads = Shape<L::KP>::kThreads * kGroups;
  constexpr int kTile = L::kTile;
  auto kernel = RefinerBlockKernel<T, P, FusedDwTile<T, P>, kOut>;
  cudaError_t error = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kBytes);
  TORCH_CHECK(
      error == cudaSuccess, "RefinerBlockFused: ", cudaGetErrorString(error));
  // As much shared memory as the SM has, so that blocks_per_sm blocks fit.
  error = cudaFuncSetAttribute(
      kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 100);
  TORCH_CHECK(
      error == cudaSuccess, "RefinerBlockFused: ", cudaGetErrorString(error));
  static const int blocks_per_sm = [&] {
    int n = 0;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &n, kernel, kThreads, L::kBytes);
    return std::max(n, 1);
  }();
  const int B = static_cast<int>(x.size(0)), H = static_cast<int>(x.size(1)),
            W = static_cast<int>(x.size(2));
  const int tiles_y = (H + kTile - 1) / kTile,
            tiles_x = (W + kTile - 1) / kTile;
  const long long tiles = static_cast<long long>(B) * tiles_y * tiles_x;
  TORCH_CHECK(tiles < (1LL << 31), "RefinerBlockFused: too many tiles");
  if (tiles == 0) return;
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int grid = static_cast<int>(
      std::min<long long>((tiles + kGroups - 1) / kGroups,
                          static_cast<long long>(sms) * blocks_per_sm));
  kernel<<<grid, kThreads, L::kBytes, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const T*>(x.data_ptr()),
      reinterpret_cast<T*>(o.y),
      dw_weight.data_ptr<float>(),
      dw_bias.data_ptr<float>(),
      reinterpret_cast<const T*>(pw_weight.data_ptr()),
      pw_bias.data_ptr<float>(),
      o.out_w,
      o.out_b,
      o.out,
      o.out_dim,
      H,
      W,
      tiles_y,
      tiles_x,
      static_cast<int>(tiles));
}

// The channel counts compiled (each is its own kernel, with the channel
// count a constant so every shared-memory offset is an immediate): those of
// the shipped presets' narrow refiners (RoMa/L2M scale 2: 144, scale 1: 24;
// l2m_s: 112, 40, 24) and of the parity fixture's graph (104, 40, 24).
// Others take the cuDNN path.
constexpr int kFusedChannels[] = {24, 40, 104, 112, 144};

template <typename T, bool kOut>
void Dispatch(const at::Tensor& x,
              const at::Tensor& dw_weight,
              const at::Tensor& dw_bias,
              const at::Tensor& pw_weight,
              const at::Tensor& pw_bias,
              const Outputs& o) {
  switch (x.size(3)) {
    case 24:
      return Launch<T, 24, kOut>(x, dw_weight, dw_bias, pw_weight, pw_bias, o);
    case 40:
      return Launch<T, 40, kOut>(x, dw_weight, dw_bias, pw_weight, pw_bias, o);
    case 104:
      return Launch<T, 104, kOut>(x, dw_weight, dw_bias, pw_weight, pw_bias, o);
    case 112:
      return Launch<T, 112, kOut>(x, dw_weight, dw_bias, pw_weight, pw_bias, o);
    case 144:
      return Launch<T, 144, kOut>(x, dw_weight, dw_bias, pw_weight, pw_bias, o);
    default:
      TORCH_CHECK(false, "RefinerBlockFused: unsupported channel count");
  }
}

// Depthwise 5×5 + bias + ReLU alone, for the wide blocks (hundreds of
// channels, where the 1×1 stays a cuBLAS GEMM): a kTileH × kTileW-pixel
// tile × kChunk channels a block, its halo and the chunk's taps and bias in
// shared memory, a thread Dw's pixels × channels; the ReLU'd result goes
// straight to y. Compiled for 512 threads an SM (≤ 128 registers a thread:
// left alone, the compiler takes 130–135 and fits three blocks, not four).
template <int kTileH_, int kTileW_, int kChunk_, typename Dw_>
struct DwShape {
  using Dw = Dw_;
  static constexpr int kTileH = kTileH_, kTileW = kTileW_, kChunk = kChunk_;
  static constexpr int kRows = Dw::kRows, kCols = Dw::kCols, kCh = Dw::kCh;
  static constexpr int kThreads =
      (kTileH * kTileW / Dw::kPixels) * (kChunk / Dw::kCh);
  static constexpr int kMinBlocks = kThreads < 512 ? 512 / kThreads : 1;
};

template <typename T, typename S>
__global__ void __launch_bounds__(S::kThreads, S::kMinBlocks)
    DepthwiseBiasReluKernel(const T* __restrict__ x,
                            T* __restrict__ y,
                            const float* __restrict__ dw_w,
                            const float* __restrict__ dw_b,
                            int H,
                            int W,
                            int P,
                            int tiles_x) {
  constexpr int kHH = S::kTileH + 2 * kHalo, kHW = S::kTileW + 2 * kHalo;
  __shared__ __align__(16) T hs[kHH * kHW * S::kChunk];
  const int tile = blockIdx.x, b = blockIdx.z;
  const int y0 = tile / tiles_x * S::kTileH, x0 = tile % tiles_x * S::kTileW;
  const int c0 = blockIdx.y * S::kChunk;
  const int channels = min(S::kChunk, P - c0);  // a multiple of 8
  const int V = channels / 8;
  // The chunk's 25 taps and bias, in the halo's copy group.
  __shared__ __align__(16) float ts[26 * S::kChunk];
  LoadTapsAsync<S::kChunk / 4>(
      ts, dw_w + c0, dw_b + c0, P, channels / 4, threadIdx.x, S::kThreads);
  LoadHaloAsync<T, kHH, kHW, S::kChunk, S::kChunk / 8, S::kThreads>(
      hs, x + static_cast<size_t>(b) * H * W * P + c0, H, W, P, V, y0, x0);
  CopyAsyncWait<0>();
  __syncthreads();

  constexpr int kBlocksX = S::kTileW / S::kCols;
  constexpr int kCh = S::kCh;
  constexpr int kQ = S::kChunk / kCh;
  const int q = threadIdx.x / kQ, h = threadIdx.x % kQ;
  if (h * kCh >= channels) return;
  const int qy = q / kBlocksX * S::kRows, qx = q % kBlocksX * S::kCols;
  float acc[S::kRows][S::kCols][kCh];
  DepthwiseReluTile<T, kHW, S::kChunk, typename S::Dw, true>(
      hs + (qy * kHW + qx) * S::kChunk + h * kCh,
      ts + h * kCh,
      S::kChunk,
      ts + 25 * S::kChunk + h * kCh,
      acc);
  // One 64-bit base, then 32-bit offsets (H·W·P < 2³¹): 64-bit address
  // math and bounds branches had cost ~20 instructions a store.
  const int rows_left = H - (y0 + qy), cols_left = W - (x0 + qx);
  if (rows_left <= 0 || cols_left <= 0) return;
  T* yt = y + static_cast<size_t>(b) * H * W * P +
          (static_cast<size_t>(y0 + qy) * W + (x0 + qx)) * P + c0 + h * kCh;
#pragma unroll
  for (int ry = 0; ry < S::kRows; ++ry) {
#pragma unroll
    for (int rx = 0; rx < S::kCols; ++rx) {
      if (ry >= rows_left || rx >= cols_left) continue;
      StoreChannels<kCh>(yt + (ry * W + rx) * P, acc[ry][rx]);
    }
  }
}

template <typename S>
void LaunchDepthwiseBiasRelu(const at::Tensor& x,
                             const at::Tensor& dw_weight,
                             const at::Tensor& dw_bias,
                             at::Tensor& y) {
  const int H = static_cast<int>(x.size(1)), W = static_cast<int>(x.size(2));
  const int P = static_cast<int>(x.size(3));
  const int tiles_x = (W + S::kTileW - 1) / S::kTileW;
  const int tiles_y = (H + S::kTileH - 1) / S::kTileH;
  const dim3 grid(static_cast<unsigned>(tiles_x * tiles_y),
                  static_cast<unsigned>((P + S::kChunk - 1) / S::kChunk),
                  static_cast<unsigned>(x.size(0)));
  const auto stream = c10::cuda::getCurrentCUDAStream();
  ForStorageDtype(x, [&](auto tag) {
    using T = decltype(tag);
    DepthwiseBiasReluKernel<T, S><<<grid, S::kThreads, 0, stream>>>(
        reinterpret_cast<const T*>(x.data_ptr()),
        reinterpret_cast<T*>(y.data_ptr()),
        dw_weight.data_ptr<float>(),
        dw_bias.data_ptr<float>(),
        H,
        W,
        P,
        tiles_x);
  });
}

// The refiner's out_conv (a 1×1 conv to a few channels) in float32 from the
// low-precision activations, reading them once: kLanes lanes per pixel,
// each lane 8 channels at a time, a shuffle reduction. LibTorch would first
// write a float32 copy of the activations for its fp32 GEMM. Narrow
// activations (≤ 64 channels) take one lane a pixel: with 8, scale 1's
// 3 vectors a pixel left 5 lanes idle (0.18 ms at 864², 200 GB/s).
constexpr int kMaxOut = kRefinerOutConvMaxOut;

template <typename T, int kOutLanes>
__global__ void OutConvKernel(const T* __restrict__ x,
                              const float* __restrict__ w,
                              const float* __restrict__ bias,
                              float* __restrict__ out,
                              long long pixels,
                              int plane,
                              int P,
                              int out_dim) {
  const long long pixel =
      (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) /
      kOutLanes;
  const int lane = threadIdx.x % kOutLanes;
  const bool active = pixel < pixels;
  float acc[kMaxOut] = {0.f, 0.f, 0.f, 0.f};
  if (active) {
    const T* row = x + pixel * P;
    for (int v = lane; v < P / 8; v += kOutLanes) {
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(row) + v);
      float in[8];
      ToFloat4(make_uint2(raw.x, raw.y), in, T());
      ToFloat4(make_uint2(raw.z, raw.w), in + 4, T());
#pragma unroll
      for (int o = 0; o < kMaxOut; ++o) {
        if (o >= out_dim) break;
        const float4* wo = reinterpret_cast<const float4*>(w + o * P) + 2 * v;
        const float4 a = __ldg(wo), b = __ldg(wo + 1);
        acc[o] += in[0] * a.x + in[1] * a.y + in[2] * a.z + in[3] * a.w +
                  in[4] * b.x + in[5] * b.y + in[6] * b.z + in[7] * b.w;
      }
    }
  }
#pragma unroll
  for (int o = 0; o < kMaxOut; ++o) {
#pragma unroll
    for (int d = kOutLanes / 2; d > 0; d /= 2) {
      acc[o] += __shfl_xor_sync(0xffffffffu, acc[o], d, kOutLanes);
    }
  }
  if (!active || lane != 0) return;
  const long long b = pixel / plane, i = pixel % plane;
  for (int o = 0; o < out_dim; ++o) {
    out[(b * out_dim + o) * plane + i] = acc[o] + bias[o];
  }
}

// grid_sample(y, grid) (bilinear, zero padding, align_corners=False) of
// channels-last features, written into channels [offset, offset + C) of the
// refiner's input buffer: a thread per 8 channels of an output pixel reads
// 16-byte vectors of the four corners. LibTorch's kernel walks the channels
// one by one with the channels-last stride, then the result is copied into
// the buffer. Same formulas and accumulation order as LibTorch's kernel.
template <typename T>
__global__ void GridSampleIntoKernel(const T* __restrict__ y,
                                     const T* __restrict__ grid,
                                     T* __restrict__ d,
                                     int Hs,
                                     int Ws,
                                     int C,
                                     int plane,
                                     int P,
                                     int offset,
                                     long long total) {
  const long long i =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int V = C / 8;
  const int v = static_cast<int>(i % V);
  const long long pixel = i / V;
  const long long b = pixel / plane;
  const float gx = static_cast<float>(grid[2 * pixel]);
  const float gy = static_cast<float>(grid[2 * pixel + 1]);
  const float ix = ((gx + 1.f) * Ws - 1.f) / 2.f;
  const float iy = ((gy + 1.f) * Hs - 1.f) / 2.f;
  const int ix_nw = static_cast<int>(floorf(ix));
  const int iy_nw = static_cast<int>(floorf(iy));
  const int ix_se = ix_nw + 1, iy_se = iy_nw + 1;
  const float nw = (ix_se - ix) * (iy_se - iy);
  const float ne = (ix - ix_nw) * (iy_se - iy);
  const float sw = (ix_se - ix) * (iy - iy_nw);
  const float se = (ix - ix_nw) * (iy - iy_nw);
  const int cx[4] = {ix_nw, ix_se, ix_nw, ix_se};
  const int cy[4] = {iy_nw, iy_nw, iy_se, iy_se};
  const float cw[4] = {nw, ne, sw, se};
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (cx[k] < 0 || cx[k] >= Ws || cy[k] < 0 || cy[k] >= Hs) continue;
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(
                                y + ((b * Hs + cy[k]) * Ws + cx[k]) * C) +
                            v);
    float in[8];
    ToFloat4(make_uint2(raw.x, raw.y), in, T());
    ToFloat4(make_uint2(raw.z, raw.w), in + 4, T());
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = fmaf(in[j], cw[k], acc[j]);
  }
  const uint2 lo = FromFloat4(acc, T()), hi = FromFloat4(acc + 4, T());
  *reinterpret_cast<uint4*>(d + pixel * P + offset + 8 * v) =
      make_uint4(lo.x, lo.y, hi.x, hi.y);
}

// `t` must be a contiguous `dtype` tensor of `sizes` on x's device; the
// error names the function and the argument.
void CheckArgument(const char* function,
                   const char* name,
                   const at::Tensor& t,
                   const at::Tensor& x,
                   at::ScalarType dtype,
                   at::IntArrayRef sizes) {
  TORCH_CHECK(t.device() == x.device() && t.scalar_type() == dtype &&
                  t.is_contiguous() && t.sizes() == sizes,
              function,
              ": ",
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

bool RefinerBlockFusedSupported(int64_t channels,
                                int64_t kernel_size,
                                at::ScalarType dtype) {
  return kernel_size == kKernel &&
         std::find(std::begin(kFusedChannels),
                   std::end(kFusedChannels),
                   channels) != std::end(kFusedChannels) &&
         (dtype == at::kHalf || dtype == at::kBFloat16);
}

namespace {

// The checks both entry points make; returns x's channel count.
int64_t CheckBlockArguments(const char* fn,
                            const at::Tensor& x,
                            const at::Tensor& dw_weight,
                            const at::Tensor& dw_bias,
                            const at::Tensor& pw_weight,
                            const at::Tensor& pw_bias) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 4 && x.is_contiguous(),
              fn,
              ": x must be a contiguous (B, H, W, P) CUDA tensor");
  const int64_t P = x.size(3);
  TORCH_CHECK(RefinerBlockFusedSupported(P, kKernel, x.scalar_type()),
              fn,
              ": ",
              P,
              " channels of ",
              x.scalar_type(),
              " are not supported (fp16/bf16; 24, 40, 104, 112 or 144 "
              "channels)");
  CheckArgument(
      fn, "dw_weight", dw_weight, x, at::kFloat, {kKernel * kKernel, P});
  CheckArgument(fn, "dw_bias", dw_bias, x, at::kFloat, {P});
  CheckArgument(fn, "pw_weight", pw_weight, x, x.scalar_type(), {P, P});
  CheckArgument(fn, "pw_bias", pw_bias, x, at::kFloat, {P});
  TORCH_CHECK(x.size(1) * x.size(2) * P < (int64_t{1} << 31),
              fn,
              ": an image of ",
              x.sizes(),
              " is too large (32-bit offsets)");
  return P;
}

}  // namespace

void RefinerBlockFused(const at::Tensor& x,
                       const at::Tensor& dw_weight,
                       const at::Tensor& dw_bias,
                       const at::Tensor& pw_weight,
                       const at::Tensor& pw_bias,
                       at::Tensor& y) {
  const char* fn = "RefinerBlockFused";
  CheckBlockArguments(fn, x, dw_weight, dw_bias, pw_weight, pw_bias);
  CheckArgument(fn, "y", y, x, x.scalar_type(), x.sizes());
  TORCH_CHECK(y.data_ptr() != x.data_ptr(),
              "RefinerBlockFused: y must not alias x (tiles read their "
              "neighbours' pixels)");
  const c10::cuda::CUDAGuard guard(x.device());
  Outputs o;
  o.y = y.data_ptr();
  ForStorageDtype(x, [&](auto tag) {
    Dispatch<decltype(tag), false>(
        x, dw_weight, dw_bias, pw_weight, pw_bias, o);
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "RefinerBlockFused: ", cudaGetErrorString(error));
}

at::Tensor RefinerBlockFusedOutConv(const at::Tensor& x,
                                    const at::Tensor& dw_weight,
                                    const at::Tensor& dw_bias,
                                    const at::Tensor& pw_weight,
                                    const at::Tensor& pw_bias,
                                    const at::Tensor& out_weight,
                                    const at::Tensor& out_bias) {
  const char* fn = "RefinerBlockFusedOutConv";
  const int64_t P =
      CheckBlockArguments(fn, x, dw_weight, dw_bias, pw_weight, pw_bias);
  const int64_t O = out_weight.dim() == 2 ? out_weight.size(0) : 0;
  TORCH_CHECK(O >= 1 && O <= kRefinerOutConvMaxOut,
              fn,
              ": out_weight must be (O, P) with 1 <= O <= ",
              kRefinerOutConvMaxOut,
              ", got ",
              out_weight.sizes());
  CheckArgument(fn, "out_weight", out_weight, x, at::kFloat, {O, P});
  CheckArgument(fn, "out_bias", out_bias, x, at::kFloat, {O});
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({x.size(0), O, x.size(1), x.size(2)},
                             x.options().dtype(at::kFloat));
  Outputs o;
  o.out_w = out_weight.data_ptr<float>();
  o.out_b = out_bias.data_ptr<float>();
  o.out = out.data_ptr<float>();
  o.out_dim = static_cast<int>(O);
  ForStorageDtype(x, [&](auto tag) {
    Dispatch<decltype(tag), true>(x, dw_weight, dw_bias, pw_weight, pw_bias, o);
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess, fn, ": ", cudaGetErrorString(error));
  return out;
}

bool DepthwiseBiasReluSupported(int64_t channels,
                                int64_t kernel_size,
                                at::ScalarType dtype) {
  return kernel_size == kKernel && channels > 0 && channels % 8 == 0 &&
         (dtype == at::kHalf || dtype == at::kBFloat16);
}

void DepthwiseBiasRelu(const at::Tensor& x,
                       const at::Tensor& dw_weight,
                       const at::Tensor& dw_bias,
                       at::Tensor& y) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 4 && x.is_contiguous(),
              "DepthwiseBiasRelu: x must be a contiguous (B, H, W, P) CUDA "
              "tensor");
  const int64_t P = x.size(3);
  TORCH_CHECK(DepthwiseBiasReluSupported(P, kKernel, x.scalar_type()),
              "DepthwiseBiasRelu: ",
              P,
              " channels of ",
              x.scalar_type(),
              " are not supported (fp16/bf16, a multiple of 8)");
  CheckArgument("DepthwiseBiasRelu",
                "dw_weight",
                dw_weight,
                x,
                at::kFloat,
                {kKernel * kKernel, P});
  CheckArgument("DepthwiseBiasRelu", "dw_bias", dw_bias, x, at::kFloat, {P});
  CheckArgument("DepthwiseBiasRelu", "y", y, x, x.scalar_type(), x.sizes());
  TORCH_CHECK(y.data_ptr() != x.data_ptr(),
              "DepthwiseBiasRelu: y must not alias x (tiles read their "
              "neighbours' pixels)");
  TORCH_CHECK(x.size(1) * x.size(2) * P < (int64_t{1} << 31),
              "DepthwiseBiasRelu: an image of ",
              x.sizes(),
              " is too large (32-bit offsets)");
  const c10::cuda::CUDAGuard guard(x.device());
  if (x.numel() == 0) return;
  TORCH_CHECK(x.size(0) <= 65535, "DepthwiseBiasRelu: batch too large");
  // 16×8 pixels × 64 channels a block, a thread 4×8 pixels × 2 channels,
  // the taps in shared memory (copied with the halo) and read per kernel
  // row. Against session 9's 8×8-pixel blocks of 2×8-pixel threads with the
  // taps preloaded from global memory (l2m_kernel_bench, 8 pairs, H100, same
  // bits): scale 4 of 864² 0.89 → 0.79 ms, scale 8 0.56 → 0.44, at 560²
  // 0.43 → 0.34 and 0.23 → 0.19. The taller thread tile converts each input
  // once for twice the outputs (FFMA 54 → 61 % of the instructions); the
  // taps from shared memory instead of L1 took the rest. 6×8-pixel threads
  // spill; 8×32 or 16×16-pixel blocks of 32 channels were slower.
  LaunchDepthwiseBiasRelu<DwShape<16, 8, 64, DwTile<4, 8, 2, false>>>(
      x, dw_weight, dw_bias, y);
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "DepthwiseBiasRelu: ", cudaGetErrorString(error));
}

at::Tensor RefinerOutConv(const at::Tensor& x,
                          const at::Tensor& weight,
                          const at::Tensor& bias) {
  TORCH_CHECK(
      x.is_cuda() && x.dim() == 4 && x.is_contiguous() && x.size(3) % 8 == 0 &&
          (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16),
      "RefinerOutConv: x must be a contiguous fp16/bf16 (B, H, W, P) "
      "CUDA tensor, P a multiple of 8");
  const int64_t P = x.size(3), out_dim = weight.size(0);
  TORCH_CHECK(out_dim >= 1 && out_dim <= kMaxOut,
              "RefinerOutConv: at most ",
              kMaxOut,
              " outputs, got ",
              out_dim);
  CheckArgument(
      "RefinerOutConv", "weight", weight, x, at::kFloat, {out_dim, P});
  CheckArgument("RefinerOutConv", "bias", bias, x, at::kFloat, {out_dim});
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2);
  at::Tensor out = at::empty({B, out_dim, H, W}, x.options().dtype(at::kFloat));
  const long long pixels = B * H * W;
  if (pixels == 0) return out;
  constexpr int kBlock = 256;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  auto launch = [&](auto tag, auto lanes) {
    using T = decltype(tag);
    constexpr int kLanes = decltype(lanes)::value;
    const unsigned grid =
        static_cast<unsigned>((pixels * kLanes + kBlock - 1) / kBlock);
    OutConvKernel<T, kLanes>
        <<<grid, kBlock, 0, stream>>>(reinterpret_cast<const T*>(x.data_ptr()),
                                      weight.data_ptr<float>(),
                                      bias.data_ptr<float>(),
                                      out.data_ptr<float>(),
                                      pixels,
                                      static_cast<int>(H * W),
                                      static_cast<int>(P),
                                      static_cast<int>(out_dim));
  };
  ForStorageDtype(x, [&](auto tag) {
    if (P <= 64) {
      launch(tag, std::integral_constant<int, 1>());
    } else {
      launch(tag, std::integral_constant<int, 8>());
    }
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "RefinerOutConv: ", cudaGetErrorString(error));
  return out;
}

bool GridSampleIntoSupported(const at::Tensor& y, at::ScalarType dtype) {
  return y.is_cuda() && y.dim() == 4 &&
         y.is_contiguous(at::MemoryFormat::ChannelsLast) &&
         y.scalar_type() == dtype && y.size(1) % 8 == 0 &&
         (dtype == at::kHalf || dtype == at::kBFloat16);
}

void GridSampleInto(const at::Tensor& y,
                    const at::Tensor& grid,
                    at::Tensor& dest,
                    int64_t channel_offset) {
  TORCH_CHECK(GridSampleIntoSupported(y, dest.scalar_type()),
              "GridSampleInto: y must be channels-last fp16/bf16 on CUDA, of "
              "dest's dtype, with a multiple of 8 channels");
  const int64_t B = y.size(0), C = y.size(1);
  TORCH_CHECK(dest.is_cuda() && dest.dim() == 4 && dest.is_contiguous() &&
                  dest.size(0) == B && dest.size(3) % 8 == 0 &&
                  channel_offset % 8 == 0 && channel_offset >= 0 &&
                  channel_offset + C <= dest.size(3),
              "GridSampleInto: dest must be a contiguous (B, h, w, P) tensor "
              "with room for the channels at a multiple-of-8 offset");
  TORCH_CHECK(
      grid.device() == y.device() && grid.scalar_type() == y.scalar_type() &&
          grid.is_contiguous() &&
          grid.sizes() == at::IntArrayRef({B, dest.size(1), dest.size(2), 2}),
      "GridSampleInto: grid must be a contiguous (B, h, w, 2) tensor "
      "of y's dtype");
  const c10::cuda::CUDAGuard guard(y.device());
  const int plane = static_cast<int>(dest.size(1) * dest.size(2));
  const long long total = B * static_cast<long long>(plane) * (C / 8);
  if (total == 0) return;
  constexpr int kBlock = 256;
  const unsigned blocks = static_cast<unsigned>((total + kBlock - 1) / kBlock);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    GridSampleIntoKernel<T><<<blocks, kBlock, 0, stream>>>(
        reinterpret_cast<const T*>(y.data_ptr()),
        reinterpret_cast<const T*>(grid.data_ptr()),
        reinterpret_cast<T*>(dest.data_ptr()),
        static_cast<int>(y.size(2)),
        static_cast<int>(y.size(3)),
        static_cast<int>(C),
        plane,
        static_cast<int>(dest.size(3)),
        static_cast<int>(channel_offset),
        total);
  };
  ForStorageDtype(y, launch);
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "GridSampleInto: ", cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
