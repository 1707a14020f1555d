#include "l2m_core/model/local_correlation_cuda.h"
#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

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

// What every route reads and writes, passed by value to its kernels: the
// query and support features (B, h, w, C) channels-last, the warp targets
// (B, h, w, 2) normalised, the output (B, h, w, (2r+1)²); the support of
// query image b is image (b + support_offset) mod B, and each dot is scaled
// by `scale` (1/√C).
template <typename T>
struct CorrelationArgs {
  const T* f0;
  const T* f1;
  const float* coords;
  T* out;
  int B, C, h, w, radius;
  float scale;
  int support_offset;
};

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
  const float2 c = __ldg(reinterpret_cast<const float2*>(coords) + pixel);
  const float ix = ((c.x + 1.f) * w - 1.f) / 2.f;
  const float iy = ((c.y + 1.f) * h - 1.f) / 2.f;
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

// Sets up the warp's query `pixel` (over the batch); false when it is past
// the batch, or when its window is all zero padding (then its outputs are
// written as zeros).
template <typename T>
__device__ inline bool StartWindow(const CorrelationArgs<T>& a,
                                   long long pixel,
                                   WarpWindow<T>& win) {
  const int B = a.B, h = a.h, w = a.w, radius = a.radius;
  const int lane = threadIdx.x % 32;
  win.pixel = pixel;
  if (win.pixel >= static_cast<long long>(B) * h * w) return false;
  win.b = static_cast<int>(win.pixel / (static_cast<long long>(h) * w));
  win.n = 2 * radius + 1;
  win.m = win.n + 1;
  win.out = a.out + win.pixel * win.n * win.n;
  if (!LocateWindow(
          a.coords, win.pixel, h, w, radius, win.x0, win.y0, win.tx, win.ty)) {
    for (int k = lane; k < win.n * win.n; k += 32) {
      win.out[k] = static_cast<T>(0.f);
    }
    return false;
  }
  return true;
}

// One output from the dots d[0], d[1], d[m], d[m + 1] of the four
// whole-pixel neighbours of its sample (rows of m dots): bilinear weights.
__device__ inline float Blend4(const float* d, int m, float tx, float ty) {
  return (1.f - ty) * ((1.f - tx) * d[0] + tx * d[1]) +
         ty * ((1.f - tx) * d[m] + tx * d[m + 1]);
}

// The (2r+1)² outputs of one query from the dots with its (2r+2)² whole-pixel
// neighbours, the lanes of a warp taking the offsets in turn.
template <typename T>
__device__ inline void BlendWindow(
    const float* dots, int radius, float tx, float ty, int lane, T* o) {
  const int n = 2 * radius + 1, m = n + 1;
  for (int k = lane; k < n * n; k += 32) {
    o[k] = static_cast<T>(Blend4(dots + (k / n) * m + k % n, m, tx, ty));
  }
}

// The query pixel of this warp in the per-query kernels: one warp a pixel,
// kWarpsPerBlock a block.
__device__ inline long long WarpPixel() {
  return static_cast<long long>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
}

// One warp per query pixel. The window's offsets are whole pixels (steps of
// 2/h, 2/w in normalised coordinates), so every offset of a query shares its
// bilinear weights: the warp takes the dot products of the query vector with
// the (2r+2)² integer neighbours of the warp target once, then blends four of
// them per offset. Features are channels-last (B, h, w, C) so each dot reads
// one contiguous row; accumulation in fp32. grid_sample's bilinear,
// zero-padded, align_corners=False sampling up to rounding.
template <typename T>
__global__ void LocalCorrelationWindow(const CorrelationArgs<T> a) {
  const T* __restrict__ f0 = a.f0;
  const T* __restrict__ f1 = a.f1;
  const int B = a.B, C = a.C, h = a.h, w = a.w, radius = a.radius;
  const float scale = a.scale;
  __shared__ float query[kWarpsPerBlock][kMaxChannels];
  __shared__ float dots[kWarpsPerBlock][kMaxWindow * kMaxWindow];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  WarpWindow<T> win;
  if (!StartWindow(a, WarpPixel(), win)) return;
  const long long pixel = win.pixel;
  const int b = win.b, m = win.m, x0 = win.x0, y0 = win.y0;
  const int bs = (b + a.support_offset) % B;  // the support image

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

// The dots of one query with the (m)² whole-pixel neighbours from (x0, y0)
// of its support image, loads coalesced (lane l takes 16-byte vectors l,
// l + 32, ... of a neighbour's row), for channel counts that fill 16-byte
// vectors (C = V·32·k, k ≤ kVecs): per-lane partial dots of 32 neighbours go
// to the warp's `partial` rows and are summed by column into `dots`, instead
// of every lane walking its own row (32 scattered rows per load).
constexpr int kChunk = 32;  // neighbours a round

template <typename T, int kVecs>
__device__ inline void WindowDotsCoalesced(const T* __restrict__ query,
                                           const T* __restrict__ image,
                                           int C,
                                           int h,
                                           int w,
                                           int m,
                                           int x0,
                                           int y0,
                                           float scale,
                                           float (*partial)[kChunk + 1],
                                           float* dots,
                                           int lane) {
  constexpr int V = 16 / sizeof(T);
  const int vectors = C / V;  // ≤ 32·kVecs
  float q[kVecs][V];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int v = lane + 32 * j;
    if (v < vectors) {
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(query) + v);
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
  // and the window walked with running coordinates: ncu showed this loop
  // bound by instruction issue (80 %), ~80 instructions a neighbour, most
  // of them a division by the window's side and 64-bit address arithmetic.
  const uint4* support = reinterpret_cast<const uint4*>(image) + lane;
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
      partial[i][lane] = dot;
      if (++x == x0 + m) x = x0, ++y;
    }
    __syncwarp();
    if (lane < count) {
      float sum = 0.f;
#pragma unroll 8
      for (int l = 0; l < 32; ++l) sum += partial[lane][l];
      dots[first + lane] = sum;
    }
    __syncwarp();
  }
}

// One query's outputs, per query with coalesced loads (WindowDotsCoalesced).
template <typename T, int kVecs>
__device__ inline void CorrelateQuery(const CorrelationArgs<T>& a,
                                      long long pixel) {
  const int B = a.B, C = a.C, h = a.h, w = a.w;
  __shared__ float partial[kWarpsPerBlock][kChunk][kChunk + 1];
  __shared__ float dots[kWarpsPerBlock][kMaxWindow * kMaxWindow];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  WarpWindow<T> win;
  if (!StartWindow(a, pixel, win)) return;
  const int bs = (win.b + a.support_offset) % B;  // the support image
  WindowDotsCoalesced<T, kVecs>(a.f0 + win.pixel * C,
                                a.f1 + static_cast<long long>(bs) * h * w * C,
                                C,
                                h,
                                w,
                                win.m,
                                win.x0,
                                win.y0,
                                a.scale,
                                partial[warp],
                                dots[warp],
                                lane);
  BlendWindow(dots[warp], a.radius, win.tx, win.ty, lane, win.out);
}

// The per-query route, one warp a query.
template <typename T, int kVecs>
__global__ void LocalCorrelationCoalesced(const CorrelationArgs<T> a) {
  CorrelateQuery<T, kVecs>(a, WarpPixel());
}

// ---------------------------------------------------------------------------
// The tensor-core route. Neighbouring queries of a smooth warp have
// overlapping windows: the 8×8 queries of a tile need the dots of their
// query vectors with the support pixels of the union of their windows (its
// bounding box, ~(8·zoom + 2r + 2)² pixels), which is one GEMM, union ×
// C × 64 queries, on mma.sync with fp32 accumulation (fp16/bf16 products
// are exact in fp32, as in the per-query kernels). Each query keeps the
// (2r+2)² dots inside its own window; the union costs ~2-5× the FLOPs the
// windows need, on units ~15× faster than FFMA, and reads each support row
// once a tile instead of once a query. Tiles whose union is large (a warp
// that tears the tile apart) are listed for LocalCorrelationTornTiles, the
// per-query route.
constexpr int kTileSide = 8;                         // queries a tile side
constexpr int kTileQueries = kTileSide * kTileSide;  // the GEMM's N
constexpr int kTileWarps = 8;
constexpr int kPassRows = 16 * kTileWarps;  // union pixels a pass (GEMM M)
constexpr int kStageChannels = 64;          // GEMM K a shared-memory stage

// The most passes a tile takes on the tensor cores before the per-query
// route is cheaper, by window side m (l2m_kernel_bench, H100: a pass over
// all tiles costs ~0.45 / 0.19 / 0.044 ms at m = 6 / 8 / 16 against the
// per-query route's 1.65 / 0.90 / 0.37 ms at 8 pairs of 864 / 864 / 560).
__device__ inline int MaxPasses(int m) {
  return m <= 6 ? 3 : m <= 8 ? 4 : m <= 12 ? 6 : 8;
}

// A query of the tile: its window (LocateWindow) and whether it is outside
// the image (kOutside: nothing written), all zero padding (kZero) or
// correlated (kWindow).
enum TileQueryState : int { kOutside = 0, kZero = 1, kWindow = 2 };
struct TileQuery {
  int x0, y0;
  float tx, ty;
  int state;
};

// Shared memory of a tile block, bytes: A [2][kPassRows][64] and
// B [2][64 queries][64] in two stages (rows of 64 channels, 16-byte chunks
// XOR-swizzled by row so ldmatrix is free of bank conflicts), the queries,
// the union's box, then the queries' window dots [64][m²] in float32.
constexpr size_t kTileABytes = 2 * kPassRows * kStageChannels * 2;
constexpr size_t kTileBBytes = 2 * kTileQueries * kStageChannels * 2;
constexpr size_t kTileQueryBytes = kTileQueries * sizeof(TileQuery);
constexpr size_t kTileDotsOffset =
    kTileABytes + kTileBBytes + kTileQueryBytes + 4 * sizeof(int);
static_assert(kTileDotsOffset % 16 == 0, "dots stay 16-byte aligned");

inline size_t TileSharedBytes(int radius) {
  const size_t m = 2 * radius + 2;
  return kTileDotsOffset + kTileQueries * m * m * sizeof(float);
}

// The element offset of 8 channels (16-byte chunk `chunk`) of a stage row.
__device__ inline int Swizzled(int row, int chunk) {
  return row * kStageChannels + ((chunk ^ (row & 7)) * 8);
}

template <typename T>
__global__ void __launch_bounds__(kTileWarps * 32)
    LocalCorrelationTiles(const T* __restrict__ f0,
                          const T* __restrict__ f1,
                          const float* __restrict__ coords,
                          T* __restrict__ out,
                          int B,
                          int C,
                          int h,
                          int w,
                          int radius,
                          float scale,
                          int support_offset,
                          int tiles_x,
                          int tiles_y,
                          int* __restrict__ torn,
                          int* __restrict__ route_counts) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* a_s = reinterpret_cast<T*>(smem);
  T* b_s = reinterpret_cast<T*>(smem + kTileABytes);
  TileQuery* qs =
      reinterpret_cast<TileQuery*>(smem + kTileABytes + kTileBBytes);
  int* box = reinterpret_cast<int*>(smem + kTileABytes + kTileBBytes +
                                    kTileQueryBytes);
  float* dots = reinterpret_cast<float*>(smem + kTileDotsOffset);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int n = 2 * radius + 1, m = n + 1, mm = m * m;
  const long long image_pixels = static_cast<long long>(h) * w;
  const int tiles = B * tiles_x * tiles_y;
  // Persistent: a block walks tiles, so the torn ones cost no block launch.
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int b = tile / (tiles_x * tiles_y);
    const int ty0 = tile / tiles_x % tiles_y * kTileSide;
    const int tx0 = tile % tiles_x * kTileSide;
    const T* support = f1 + (b + support_offset) % B * image_pixels * C;

    // The queries and the union of their windows (those touching the image).
    __syncthreads();  // the last tile's blend has read qs and dots
    if (tid == 0) box[0] = box[2] = INT_MAX, box[1] = box[3] = INT_MIN;
    __syncthreads();
    if (tid < kTileQueries) {
      TileQuery q{0, 0, 0.f, 0.f, kOutside};
      const int qy = ty0 + tid / kTileSide, qx = tx0 + tid % kTileSide;
      if (qy < h && qx < w) {
        q.state = kZero;
        const long long pixel = b * image_pixels + qy * w + qx;
        if (LocateWindow(coords, pixel, h, w, radius, q.x0, q.y0, q.tx, q.ty) &&
            q.x0 < w && q.x0 + m > 0 && q.y0 < h && q.y0 + m > 0) {
          q.state = kWindow;
        }
      }
      qs[tid] = q;
      // The box by warp reductions, one shared atomic a warp and bound.
      const bool in = q.state == kWindow;
      const int x_min = __reduce_min_sync(~0u, in ? q.x0 : INT_MAX);
      const int x_max = __reduce_max_sync(~0u, in ? q.x0 : INT_MIN);
      const int y_min = __reduce_min_sync(~0u, in ? q.y0 : INT_MAX);
      const int y_max = __reduce_max_sync(~0u, in ? q.y0 : INT_MIN);
      if (lane == 0) {
        atomicMin(&box[0], x_min);
        atomicMax(&box[1], x_max);
        atomicMin(&box[2], y_min);
        atomicMax(&box[3], y_max);
      }
    }
    __syncthreads();
    int xa = 0, cols = 0, ya = 0, area = 0;
    if (box[0] <= box[1]) {
      xa = max(box[0], 0);
      ya = max(box[2], 0);
      cols = min(box[1] + m, w) - xa;
      area = cols * (min(box[3] + m, h) - ya);
    }
    const int passes = (area + kPassRows - 1) / kPassRows;
    if (route_counts != nullptr && tid == 0 && area > 0) {
      atomicAdd(&route_counts[passes <= MaxPasses(m) ? 0 : 1], 1);
    }
    if (passes > MaxPasses(m)) {
      // Torn: listed for the per-query kernel, which writes all its outputs.
      if (tid == 0) torn[1 + atomicAdd(&torn[0], 1)] = tile;
      continue;
    }
    for (int i = tid; i < kTileQueries * mm; i += blockDim.x) dots[i] = 0.f;
    __syncthreads();

    if (passes > 0) {
      // Stage copies: this thread's 16-byte chunk of A rows tid/8 + 32j (union
      // pixels) and of B rows tid/8 + 32j (queries); B's rows stay put.
      const int chunk = tid % 8, row = tid / 8;
      const T* b_src[2];
      bool b_ok[2];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int i = row + 32 * j;
        b_ok[j] = qs[i].state != kOutside;
        b_src[j] = f0 +
                   (b * image_pixels + (ty0 + i / kTileSide) * w + tx0 +
                    i % kTileSide) *
                       C +
                   chunk * 8;
      }
      const int k_stages = C / kStageChannels;
      const int steps = passes * k_stages;
      auto issue = [&](int step) {
        const int pass = step / k_stages, k0 = step % k_stages * kStageChannels;
        T* a = a_s + (step & 1) * kPassRows * kStageChannels;
        T* bq = b_s + (step & 1) * kTileQueries * kStageChannels;
#pragma unroll
        for (int j = 0; j < kPassRows / 32; ++j) {
          const int r = row + 32 * j, p = pass * kPassRows + r;
          const bool ok = p < area;
          const T* src = ok ? support +
                                  ((ya + p / cols) * w + xa + p % cols) *
                                      static_cast<long long>(C) +
                                  k0 + chunk * 8
                            : f1;
          CopyAsync16(a + Swizzled(r, chunk), src, ok);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          CopyAsync16(bq + Swizzled(row + 32 * j, chunk),
                      b_ok[j] ? b_src[j] + k0 : f0,
                      b_ok[j]);
        }
        CopyAsyncCommit();
      };
      float acc[kTileQueries / 8][4] = {};
      issue(0);
      for (int s = 0; s < steps; ++s) {
        if (s + 1 < steps) {
          issue(s + 1);
          CopyAsyncWait<1>();
        } else {
          CopyAsyncWait<0>();
        }
        __syncthreads();
        const T* a = a_s + (s & 1) * kPassRows * kStageChannels;
        const T* bq = b_s + (s & 1) * kTileQueries * kStageChannels;
        const int ar = warp * 16 + lane % 16;
#pragma unroll
        for (int ks = 0; ks < kStageChannels / 16; ++ks) {
          unsigned af[4];
          LoadMatrixX4(af, a + Swizzled(ar, ks * 2 + lane / 16));
#pragma unroll
          for (int j = 0; j < kTileQueries / 16; ++j) {
            unsigned bf[4];
            LoadMatrixX4(bf,
                         bq + Swizzled(j * 16 + lane / 16 * 8 + lane % 8,
                                       ks * 2 + lane / 8 % 2));
            Mma16816(acc[2 * j], af, bf[0], bf[1], T());
            Mma16816(acc[2 * j + 1], af, bf[2], bf[3], T());
          }
        }
        if ((s + 1) % k_stages == 0) {
          // A pass done: each query keeps the dots inside its window.
          const int pass = s / k_stages;
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int p = pass * kPassRows + warp * 16 + lane / 4 + half * 8;
            const int py = p < area ? ya + p / cols : -1;
            const int px = p < area ? xa + p % cols : -1;
#pragma unroll
            for (int nt = 0; nt < kTileQueries / 8; ++nt) {
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const int i = nt * 8 + lane % 4 * 2 + e;
                const TileQuery& q = qs[i];
                const int dx = px - q.x0, dy = py - q.y0;
                if (py >= 0 && q.state == kWindow &&
                    static_cast<unsigned>(dx) < static_cast<unsigned>(m) &&
                    static_cast<unsigned>(dy) < static_cast<unsigned>(m)) {
                  dots[i * mm + dy * m + dx] = acc[nt][half * 2 + e] * scale;
                }
                acc[nt][half * 2 + e] = 0.f;
              }
            }
          }
        }
        __syncthreads();  // the stage is free for the copy after next
      }
    }
    __syncthreads();

    // Four dots blended per offset, a thread an output (a tile row's queries
    // are neighbouring pixels: its outputs are contiguous).
    const int nn = n * n;
    for (int k = tid; k < kTileQueries * nn; k += blockDim.x) {
      const int i = k / nn, o = k % nn;
      const TileQuery& q = qs[i];
      if (q.state == kOutside) continue;
      const float v = Blend4(dots + i * mm + o / n * m + o % n, m, q.tx, q.ty);
      const long long pixel =
          b * image_pixels + (ty0 + i / kTileSide) * w + tx0 + i % kTileSide;
      out[pixel * nn + o] = static_cast<T>(v);
    }
  }
}

// The per-query route for the tiles LocalCorrelationTiles listed as torn
// (torn[0] of them, in torn[1..]): 8 blocks a tile, one warp a query. The
// grid covers every tile (its size is fixed when a CUDA graph is captured);
// blocks past the list return at once.
template <typename T, int kVecs>
__global__ void LocalCorrelationTornTiles(const CorrelationArgs<T> a,
                                          int tiles_x,
                                          int tiles_y,
                                          const int* __restrict__ torn) {
  const int h = a.h, w = a.w;
  constexpr int kBlocksPerTile = kTileQueries / kWarpsPerBlock;
  const int slot = blockIdx.x / kBlocksPerTile;
  if (slot >= torn[0]) return;
  const int tile = torn[1 + slot];
  const int i = blockIdx.x % kBlocksPerTile * kWarpsPerBlock + threadIdx.x / 32;
  const int b = tile / (tiles_x * tiles_y);
  const int qy = tile / tiles_x % tiles_y * kTileSide + i / kTileSide;
  const int qx = tile % tiles_x * kTileSide + i % kTileSide;
  if (qy >= h || qx >= w) return;
  CorrelateQuery<T, kVecs>(a, (static_cast<long long>(b) * h + qy) * w + qx);
}

// The blocks of a tile kernel that stay resident on the current device at
// `radius`, its shared memory limit raised for radius 7 on first use (above
// the default 48 KB from radius 3 on: the dots of 64 windows). Cached per
// device, kernel and radius: the occupancy query costs host time on every
// eager call otherwise.
template <typename Kernel>
int ResidentTileBlocks(Kernel kernel, int radius) {
  static std::mutex mutex;
  static std::map<std::tuple<int, const void*, int>, int> cache;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  const auto key =
      std::make_tuple(device, reinterpret_cast<const void*>(kernel), radius);
  const std::lock_guard<std::mutex> lock(mutex);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  C10_CUDA_CHECK(
      cudaFuncSetAttribute(kernel,
                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(TileSharedBytes(7))));
  int per_sm = 0, sms = 0;
  C10_CUDA_CHECK(
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, kernel, kTileWarps * 32, TileSharedBytes(radius)));
  const int blocks = std::max(per_sm, 1) * sms;
  cache.emplace(key, blocks);
  return blocks;
}

// The kernels' arguments: a, s the query and support features (B, h, w, C)
// of storage type T, g the targets (B, h, w, 2), out (B, h, w, n²).
template <typename T>
CorrelationArgs<T> MakeArguments(const at::Tensor& a,
                                 const at::Tensor& s,
                                 const at::Tensor& g,
                                 const at::Tensor& out,
                                 int radius,
                                 int64_t support_offset) {
  const int C = static_cast<int>(a.size(3));
  return {reinterpret_cast<const T*>(a.data_ptr()),
          reinterpret_cast<const T*>(s.data_ptr()),
          g.data_ptr<float>(),
          reinterpret_cast<T*>(out.data_ptr()),
          static_cast<int>(a.size(0)),
          C,
          static_cast<int>(a.size(1)),
          static_cast<int>(a.size(2)),
          radius,
          1.f / std::sqrt(static_cast<float>(C)),
          static_cast<int>(support_offset)};
}

}  // namespace

bool HaveLocalCorrelationKernel() { return true; }

at::Tensor LocalCorrelationKernel(const at::Tensor& f0,
                                  const at::Tensor& f1,
                                  const at::Tensor& coords,
                                  int radius,
                                  int64_t support_offset,
                                  LocalCorrelationRoute route,
                                  at::Tensor* tile_routes) {
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
  // Each target is read as one float2 (LocateWindow).
  TORCH_CHECK(reinterpret_cast<uintptr_t>(g.data_ptr()) % sizeof(float2) == 0,
              "LocalCorrelationKernel: coords must be 8-byte aligned");
  const int n = 2 * radius + 1;
  // Written (B, h, w, n²): returned as a channels-last (B, n², h, w) view.
  at::Tensor out = at::empty({B, h, w, n * n}, a.options());
  const long long pixels = static_cast<long long>(B) * h * w;
  // (C ≤ kMaxChannels, checked above, is what the tile kernels' kVecs cover.)
  const bool tiles =
      route != LocalCorrelationRoute::kPerQuery &&
      (a.scalar_type() == at::kHalf || a.scalar_type() == at::kBFloat16) &&
      C % kStageChannels == 0;
  if (tile_routes != nullptr) {
    *tile_routes = at::zeros({2}, a.options().dtype(at::kInt));
  }
  if (pixels > 0 && tiles) {
    const int tiles_x = (w + kTileSide - 1) / kTileSide;
    const int tiles_y = (h + kTileSide - 1) / kTileSide;
    const long long blocks = static_cast<long long>(B) * tiles_x * tiles_y;
    TORCH_CHECK(blocks * (kTileQueries / kWarpsPerBlock) < (int64_t{1} << 31),
                "LocalCorrelationKernel: too many tiles");
    const size_t shared = TileSharedBytes(radius);
    // The torn tiles' count, then their indices.
    const at::Tensor torn =
        at::zeros({1 + blocks}, a.options().dtype(at::kInt));
    ForStorageDtype(a, [&](auto tag) {
      using T = decltype(tag);
      const auto args = MakeArguments<T>(a, s, g, out, radius, support_offset);
      const int vectors = C / 8;
      auto kernel = LocalCorrelationTiles<T>;
      const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
      // As many blocks as stay resident (they walk the tiles).
      const long long grid =
          std::min<long long>(blocks, ResidentTileBlocks(kernel, radius));
      // The tile kernel takes its arguments one by one: from the struct it
      // ran 2-4 % slower (H100, l2m_kernel_bench lc, smooth warps).
      kernel<<<static_cast<unsigned>(grid), kTileWarps * 32, shared, stream>>>(
          args.f0,
          args.f1,
          args.coords,
          args.out,
          args.B,
          args.C,
          args.h,
          args.w,
          args.radius,
          args.scale,
          args.support_offset,
          tiles_x,
          tiles_y,
          torn.data_ptr<int>(),
          tile_routes != nullptr ? tile_routes->data_ptr<int>() : nullptr);
      auto torn_kernel = vectors <= 32   ? LocalCorrelationTornTiles<T, 1>
                         : vectors <= 64 ? LocalCorrelationTornTiles<T, 2>
                                         : LocalCorrelationTornTiles<T, 4>;
      constexpr int kBlocksPerTile = kTileQueries / kWarpsPerBlock;
      torn_kernel<<<static_cast<unsigned>(blocks * kBlocksPerTile),
                    kWarpsPerBlock * 32,
                    0,
                    stream>>>(args, tiles_x, tiles_y, torn.data_ptr<int>());
    });
  } else if (pixels > 0) {
    const unsigned blocks =
        static_cast<unsigned>((pixels + kWarpsPerBlock - 1) / kWarpsPerBlock);
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
                MakeArguments<scalar_t>(a, s, g, out, radius, support_offset));
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
