#pragma once

// Device helpers of the refiner kernels (refiner_block_cuda.cu,
// wide_refiner_block_cuda.cu): channel loads and stores, one thread's
// depthwise tile, the asynchronous halo loader, ldmatrix. Included from .cu
// files only.

#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <type_traits>

namespace l2m {
namespace internal {
namespace refiner_tile {

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
// tile in shared memory: kHaloWidth pixels a row (rows kRowStride elements
// apart), kPixelStride elements a pixel, `window` at the channel group of the
// thread's top-left input pixel; `taps` (25 rows of tap_stride floats) and
// `bias` at the same channel group (in shared memory with kSharedWeights). The
// halo rows are read once each, top to bottom, and every row feeds all the
// output rows whose window it is in, so each input is converted to float once
// rather than once per kernel row (the fp16 → fp32 conversions were 240 of a
// thread's 1,750 instructions, SASS on an H100). Every output still sums bias,
// then the taps in (ky, kx) order: all tile shapes give the same bits.
template <typename T,
          int kHaloWidth,
          int kPixelStride,
          typename D,
          int kRowStride = kHaloWidth* kPixelStride,
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
    const T* row = window + iy * kRowStride;
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

// Asynchronous 16-byte global → shared copy (zero-filled when !valid), so a
// tile's whole halo is in flight at once.
__device__ inline void CopyAsync16(void* dst, const void* src, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s),
               "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ inline void CopyAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ inline void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Starts the asynchronous copy of a tile's halo, kHaloH × kHaloW pixels
// from (y0 − 2, x0 − 2) of kV 16-byte vectors each (those from `vectors`
// on are skipped: a partial channel chunk), into shared memory with
// kPixelStride elements a pixel and kRowStride a row; zeros outside the image.
// xb: the image's first pixel at the channel group, P its channels.
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
          int kThreadCount,
          int kRowStride = kHaloW* kPixelStride>
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
    T* dst = hs + g * kRowStride + px * kPixelStride + v * 8;
#pragma unroll
    for (int k = 0; k < kRowsPerGroup; ++k) {
      if (kHaloH % kGroups != 0 && g + k * kGroups >= kHaloH) break;
      const int gy = gy0 + k * kGroups;
      const bool inside =
          column_inside && static_cast<unsigned>(gy) < static_cast<unsigned>(H);
      const unsigned offset = offset0 + k * kGroups * row_stride;
      CopyAsync16(
          dst + k * kGroups * kRowStride, xb + (inside ? offset : 0u), inside);
    }
  }
  CopyAsyncCommit();
}

// Four 8×8 b16 matrices from shared memory, one row address a lane.
__device__ inline void LoadMatrixX4(unsigned (&r)[4], const void* row) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(s));
}

}  // namespace refiner_tile
}  // namespace internal
}  // namespace l2m
