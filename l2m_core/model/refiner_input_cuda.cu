#include "l2m_core/model/refiner_input_cuda.h"
#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace l2m {
namespace internal {
namespace {

constexpr int kSegments = 3;
// kGenericPixel: the generic vectors of a pixel by one thread, so that the
// bilinear corners and the embedding's input are worked out once a pixel
// (scale 1's narrow parts are all generic: 3 vectors a pixel).
enum SegmentKind { kCopyX, kSampleY, kGeneric, kGenericPixel };

template <typename T>
struct Args {
  const T* x;
  Strides xs;
  int cx;
  const T* y;
  Strides ys;
  int cy, hs, ws;
  const float* flow;
  Strides fs;
  const float* identity;  // (2, h, w)
  const float* emb_w;     // (E, 2)
  const float* emb_b;     // (E)
  int ce;
  float emb_scale;
  int support_offset;  // x_hat of image b samples y's image b + offset
  const T* corr;
  Strides cs;
  int cc;
  T* d;
  int h, w, P;
  // Vector ranges [begin, end) of d's pixels, in order, by kind; blocks:
  // each segment's share of blockIdx.x.
  int seg_kind[3], seg_begin[3], seg_end[3], seg_blocks[3];
};

// 8 elements of T from a 16-byte-aligned address, widened.
template <typename T>
__device__ inline void Load8(const T* p, float (&f)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) f[j] = static_cast<float>(e[j]);
}

// The bilinear corners of x_hat at one pixel (GridSampleInto's formulas,
// LibTorch's, on the grid rounded to T): element offsets into y, −1 where
// outside (zero padding), and their weights; bs: y's image.
template <typename T>
__device__ inline void Corners(const Args<T>& a,
                               int bs,
                               float fx,
                               float fy,
                               long long (&corner)[4],
                               float (&cw)[4]) {
  const float gx = Round<T>(fx), gy = Round<T>(fy);
  const float ix = ((gx + 1.f) * a.ws - 1.f) / 2.f;
  const float iy = ((gy + 1.f) * a.hs - 1.f) / 2.f;
  const int ix_nw = static_cast<int>(floorf(ix));
  const int iy_nw = static_cast<int>(floorf(iy));
  const int ix_se = ix_nw + 1, iy_se = iy_nw + 1;
  cw[0] = (ix_se - ix) * (iy_se - iy);
  cw[1] = (ix - ix_nw) * (iy_se - iy);
  cw[2] = (ix_se - ix) * (iy - iy_nw);
  cw[3] = (ix - ix_nw) * (iy - iy_nw);
  const int cxs[4] = {ix_nw, ix_se, ix_nw, ix_se};
  const int cys[4] = {iy_nw, iy_nw, iy_se, iy_se};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    corner[k] = cxs[k] >= 0 && cxs[k] < a.ws && cys[k] >= 0 && cys[k] < a.hs
                    ? bs * a.ys.b + cys[k] * a.ys.y + cxs[k] * a.ys.x
                    : -1;
  }
}

// A thread per 16-byte vector (8 channels) of d, so the writes are whole
// and coalesced. The vectors of a pixel fall into up to three segments,
// each its own range of blocks so that a warp never mixes them (mixed
// warps ran every path: ncu, 5× the instructions): x's vectors copied
// whole, x_hat's sampled 16 bytes a corner, and the rest channel by
// channel (emb, corr, padding, and any part not channels-last and
// 16-byte aligned), a thread a vector or, where a pixel has 2–4 such
// vectors, a thread a pixel. blockIdx.y is the batch index and the rest 32-bit:
// 64-bit divisions by the run-time counts cost more than the copy.
template <typename T>
__global__ void __launch_bounds__(256) RefinerInputKernel(const Args<T> a) {
  int seg = 0, block = blockIdx.x;
  while (seg + 1 < kSegments && block >= a.seg_blocks[seg]) {
    block -= a.seg_blocks[seg++];
  }
  const int kind = a.seg_kind[seg];
  const int vs = a.seg_end[seg] - a.seg_begin[seg];
  const int units = kind == kGenericPixel ? 1 : vs;  // threads a pixel
  const int plane = a.h * a.w;
  const int i = block * blockDim.x + threadIdx.x;
  if (i >= plane * units) return;
  const int b = blockIdx.y;
  const int bs = (b + a.support_offset) % gridDim.y;  // y's image
  const int r = i / units;
  const int v_begin = a.seg_begin[seg] + (kind == kGenericPixel ? 0 : i % vs);
  const int v_end = kind == kGenericPixel ? a.seg_end[seg] : v_begin + 1;
  const int c0 = v_begin * 8;
  const int py = r / a.w, px = r % a.w;
  uint4* out = reinterpret_cast<uint4*>(
      a.d + (static_cast<long long>(b) * plane + r) * a.P + c0);
  if (kind == kCopyX) {
    *out = __ldg(reinterpret_cast<const uint4*>(a.x + b * a.xs.b + py * a.xs.y +
                                                px * a.xs.x + c0));
    return;
  }
  // Channel ranges: x [0, y0), x_hat [y0, e0), emb [e0, k0), corr [k0, z0).
  const int y0 = a.cx, e0 = y0 + a.cy, k0 = e0 + a.ce, z0 = k0 + a.cc;
  const float* f = a.flow + b * a.fs.b + py * a.fs.y + px * a.fs.x;
  const float fx = f[0], fy = f[a.fs.c];
  long long corner[4] = {-1, -1, -1, -1};
  float cw[4] = {0.f, 0.f, 0.f, 0.f};
  float v[8];
  auto store = [&](int q) {
    uint4 packed;
    packed.x = PackPair(v[0], v[1], T());
    packed.y = PackPair(v[2], v[3], T());
    packed.z = PackPair(v[4], v[5], T());
    packed.w = PackPair(v[6], v[7], T());
    out[q] = packed;
  };
  if (kind == kSampleY) {
    Corners(a, bs, fx, fy, corner, cw);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = 0.f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (corner[k] < 0) continue;
      float in[8];
      Load8(a.y + corner[k] + (c0 - y0), in);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = fmaf(in[j], cw[k], v[j]);
    }
    store(0);
    return;
  }
  const int c_end = v_end * 8;
  if (c_end > y0 && c0 < e0) Corners(a, bs, fx, fy, corner, cw);
  // emb's input: the scaled displacement as autocast casts it.
  float in0 = 0.f, in1 = 0.f;
  if (c_end > e0 && c0 < k0) {
    const float* id = a.identity + r;
    in0 = Round<T>(a.emb_scale * (fx - id[0]));
    in1 = Round<T>(a.emb_scale * (fy - id[plane]));
  }
  for (int q = 0; q < v_end - v_begin; ++q) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int c = c0 + 8 * q + j;
      float value = 0.f;
      if (c < y0) {
        value = static_cast<float>(
            a.x[b * a.xs.b + c * a.xs.c + py * a.xs.y + px * a.xs.x]);
      } else if (c < e0) {
        const long long cc = static_cast<long long>(c - y0) * a.ys.c;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (corner[k] < 0) continue;
          value = fmaf(static_cast<float>(a.y[corner[k] + cc]), cw[k], value);
        }
      } else if (c < k0) {
        const int e = c - e0;
        const float conv = fmaf(
            Round<T>(a.emb_w[2 * e + 1]), in1, Round<T>(a.emb_w[2 * e]) * in0);
        value = Round<T>(conv) + Round<T>(a.emb_b[e]);
      } else if (c < z0) {
        value = static_cast<float>(
            a.corr[b * a.cs.b + (c - k0) * a.cs.c + py * a.cs.y + px * a.cs.x]);
      }
      v[j] = value;
    }
    store(q);
  }
}

// Scale 1's input, a thread a pixel, where its parts are channels-last
// with compile-time channel counts (kX, kY, kE; no correlation) and V
// vectors a pixel: each part's pixel address worked out once and its
// channels read at constant offsets. The generic pixel path branched on
// the part of every channel and built 64-bit addresses for each of its
// 24 channels (1.6 ms at 864², 8 pairs, H100). Same formulas and order.
template <typename T, int kX, int kY, int kE, int V>
__global__ void __launch_bounds__(256)
    RefinerInputPixelKernel(const Args<T> a) {
  static_assert(kX + kY + kE <= 8 * V, "the parts fit the pixel's vectors");
  const int plane = a.h * a.w;
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= plane) return;
  const int b = blockIdx.y;
  const int bs = (b + a.support_offset) % gridDim.y;  // y's image
  const int py = r / a.w, px = r % a.w;
  const float* f = a.flow + b * a.fs.b + py * a.fs.y + px * a.fs.x;
  const float fx = f[0], fy = f[a.fs.c];
  float v[8 * V];
  const T* xp = a.x + b * a.xs.b + py * a.xs.y + px * a.xs.x;
#pragma unroll
  for (int c = 0; c < kX; ++c) v[c] = static_cast<float>(xp[c]);
  long long corner[4];
  float cw[4];
  Corners(a, bs, fx, fy, corner, cw);
#pragma unroll
  for (int c = 0; c < kY; ++c) v[kX + c] = 0.f;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (corner[k] < 0) continue;
    const T* yp = a.y + corner[k];
#pragma unroll
    for (int c = 0; c < kY; ++c) {
      v[kX + c] = fmaf(static_cast<float>(yp[c]), cw[k], v[kX + c]);
    }
  }
  const float* id = a.identity + r;
  const float in0 = Round<T>(a.emb_scale * (fx - id[0]));
  const float in1 = Round<T>(a.emb_scale * (fy - id[plane]));
#pragma unroll
  for (int e = 0; e < kE; ++e) {
    const float conv =
        fmaf(Round<T>(a.emb_w[2 * e + 1]), in1, Round<T>(a.emb_w[2 * e]) * in0);
    v[kX + kY + e] = Round<T>(conv) + Round<T>(a.emb_b[e]);
  }
#pragma unroll
  for (int c = kX + kY + kE; c < 8 * V; ++c) v[c] = 0.f;
  uint4* out = reinterpret_cast<uint4*>(
      a.d + (static_cast<long long>(b) * plane + r) * a.P);
#pragma unroll
  for (int q = 0; q < V; ++q) {
    uint4 packed;
    packed.x = PackPair(v[8 * q], v[8 * q + 1], T());
    packed.y = PackPair(v[8 * q + 2], v[8 * q + 3], T());
    packed.z = PackPair(v[8 * q + 4], v[8 * q + 5], T());
    packed.w = PackPair(v[8 * q + 6], v[8 * q + 7], T());
    out[q] = packed;
  }
}

// Whether a part's 8-channel vectors can load as 16 bytes: channels
// contiguous, every pixel and the base 16-byte aligned.
bool Vectorizable(const at::Tensor& t) {
  return t.stride(1) == 1 && t.size(1) % 8 == 0 && t.stride(0) % 8 == 0 &&
         t.stride(2) % 8 == 0 && t.stride(3) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

void CheckPart(const at::Tensor& t,
               const char* name,
               const at::Tensor& d,
               at::ScalarType dtype,
               at::IntArrayRef leading) {
  TORCH_CHECK(
      t.dim() == 4 && t.device() == d.device() && t.scalar_type() == dtype,
      "AssembleRefinerInput: ",
      name,
      " must be a 4-d ",
      dtype,
      " tensor on ",
      d.device(),
      ", got ",
      t.scalar_type(),
      " ",
      t.sizes(),
      " on ",
      t.device());
  for (size_t k = 0; k < leading.size(); ++k) {
    const int64_t dim = k == 0 ? 0 : static_cast<int64_t>(k) + 1;
    TORCH_CHECK(t.size(dim) == leading[k],
                "AssembleRefinerInput: ",
                name,
                " has size ",
                t.sizes(),
                ", expected ",
                leading[k],
                " at dimension ",
                dim);
  }
}

}  // namespace

bool AssembleRefinerInputSupported(const at::Tensor& x,
                                   const at::Tensor& y,
                                   at::ScalarType dtype) {
  return x.is_cuda() && y.is_cuda() && x.dim() == 4 && y.dim() == 4 &&
         x.scalar_type() == dtype && y.scalar_type() == dtype &&
         (dtype == at::kHalf || dtype == at::kBFloat16);
}

void AssembleRefinerInput(const RefinerInputParts& p, at::Tensor& d) {
  TORCH_CHECK(
      d.is_cuda() && d.dim() == 4 && d.is_contiguous() && d.size(3) % 8 == 0 &&
          (d.scalar_type() == at::kHalf || d.scalar_type() == at::kBFloat16),
      "AssembleRefinerInput: d must be a contiguous fp16/bf16 "
      "(B, h, w, P) CUDA tensor, P a multiple of 8");
  const at::ScalarType dtype = d.scalar_type();
  const int64_t B = d.size(0), h = d.size(1), w = d.size(2), P = d.size(3);
  CheckPart(p.x, "x", d, dtype, {B, h, w});
  CheckPart(p.y, "y", d, dtype, {B});
  CheckPart(p.flow, "flow", d, at::kFloat, {B, h, w});
  TORCH_CHECK(p.flow.size(1) == 2,
              "AssembleRefinerInput: flow needs 2 channels");
  TORCH_CHECK(p.identity.is_contiguous() && p.identity.numel() == 2 * h * w &&
                  p.identity.scalar_type() == at::kFloat &&
                  p.identity.device() == d.device(),
              "AssembleRefinerInput: identity must be a contiguous float32 "
              "(1, 2, h, w) grid");
  const int64_t E = p.emb_weight.size(0);
  TORCH_CHECK(p.emb_weight.is_contiguous() && p.emb_weight.numel() == 2 * E &&
                  p.emb_bias.is_contiguous() && p.emb_bias.numel() == E &&
                  p.emb_weight.scalar_type() == at::kFloat &&
                  p.emb_bias.scalar_type() == at::kFloat &&
                  p.emb_weight.device() == d.device() &&
                  p.emb_bias.device() == d.device(),
              "AssembleRefinerInput: emb_weight (E, 2, 1, 1) and emb_bias (E) "
              "must be contiguous float32 on d's device");
  TORCH_CHECK(
      p.support_offset >= 0 && p.support_offset < std::max<int64_t>(B, 1),
      "AssembleRefinerInput: support_offset ",
      p.support_offset,
      " outside [0, ",
      B,
      ")");
  const bool has_corr = p.corr.defined();
  if (has_corr) CheckPart(p.corr, "corr", d, dtype, {B, h, w});
  const int64_t channels =
      p.x.size(1) + p.y.size(1) + E + (has_corr ? p.corr.size(1) : 0);
  TORCH_CHECK(channels <= P,
              "AssembleRefinerInput: ",
              channels,
              " input channels do not fit d's ",
              P);
  const c10::cuda::CUDAGuard guard(d.device());
  const long long plane = h * w;
  TORCH_CHECK(plane * (P / 8) < (1LL << 31) && B <= 65535,
              "AssembleRefinerInput: ",
              d.sizes(),
              " is too large");
  if (B * plane == 0) return;
  constexpr int kBlock = 256;
  // Scale 1 of the shipped presets and the parity graph: 9 + 9 + 6
  // channels-last channels in 24 (or 32) a pixel.
  const bool pixel_kernel = !has_corr && p.x.size(1) == 9 && p.y.size(1) == 9 &&
                            E == 6 && p.x.stride(1) == 1 &&
                            p.y.stride(1) == 1 && (P == 24 || P == 32);
  ForStorageDtype(d, [&](auto tag) {
    using T = decltype(tag);
    Args<T> a;
    a.x = reinterpret_cast<const T*>(p.x.data_ptr());
    a.xs = StridesOf(p.x);
    a.cx = static_cast<int>(p.x.size(1));
    a.y = reinterpret_cast<const T*>(p.y.data_ptr());
    a.ys = StridesOf(p.y);
    a.cy = static_cast<int>(p.y.size(1));
    a.hs = static_cast<int>(p.y.size(2));
    a.ws = static_cast<int>(p.y.size(3));
    a.flow = p.flow.data_ptr<float>();
    a.fs = StridesOf(p.flow);
    a.identity = p.identity.data_ptr<float>();
    a.emb_w = p.emb_weight.data_ptr<float>();
    a.emb_b = p.emb_bias.data_ptr<float>();
    a.ce = static_cast<int>(E);
    // LibTorch multiplies a float tensor by a double scalar in float.
    a.emb_scale = static_cast<float>(p.emb_scale);
    a.support_offset = static_cast<int>(p.support_offset);
    a.corr = has_corr ? reinterpret_cast<const T*>(p.corr.data_ptr()) : nullptr;
    a.cs = has_corr ? StridesOf(p.corr) : Strides{0, 0, 0, 0};
    a.cc = has_corr ? static_cast<int>(p.corr.size(1)) : 0;
    a.d = reinterpret_cast<T*>(d.data_ptr());
    a.h = static_cast<int>(h);
    a.w = static_cast<int>(w);
    a.P = static_cast<int>(P);
    if (pixel_kernel) {
      const dim3 grid(static_cast<unsigned>((plane + kBlock - 1) / kBlock),
                      static_cast<unsigned>(B));
      const auto stream = c10::cuda::getCurrentCUDAStream();
      if (P == 24) {
        RefinerInputPixelKernel<T, 9, 9, 6, 3><<<grid, kBlock, 0, stream>>>(a);
      } else {
        RefinerInputPixelKernel<T, 9, 9, 6, 4><<<grid, kBlock, 0, stream>>>(a);
      }
      return;
    }
    // Segments: x copied whole where it is channels-last and 16-byte
    // aligned, then x_hat sampled whole likewise, the rest generic.
    const int V = static_cast<int>(P / 8);
    int n = 0, pos = 0;
    auto add = [&](int kind, int end) {
      const int units = kind == kGenericPixel ? 1 : end - pos;
      a.seg_kind[n] = kind;
      a.seg_begin[n] = pos;
      a.seg_end[n] = end;
      a.seg_blocks[n] = static_cast<int>((plane * units + kBlock - 1) / kBlock);
      pos = end;
      ++n;
    };
    const bool x_whole = Vectorizable(p.x);
    if (x_whole) add(kCopyX, a.cx / 8);
    if (x_whole && Vectorizable(p.y)) add(kSampleY, pos + a.cy / 8);
    // A few generic vectors a pixel: one thread each pixel (the corners and
    // the embedding's input once); more: a thread a vector, for parallelism.
    add(V - pos >= 2 && V - pos <= 4 ? kGenericPixel : kGeneric, V);
    int blocks = 0;
    for (int k = 0; k < n; ++k) blocks += a.seg_blocks[k];
    for (; n < kSegments; ++n) {
      a.seg_kind[n] = kGeneric;
      a.seg_begin[n] = a.seg_end[n] = V;
      a.seg_blocks[n] = 0;
    }
    RefinerInputKernel<T>
        <<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(B)),
           kBlock,
           0,
           c10::cuda::getCurrentCUDAStream()>>>(a);
  });
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess,
              "AssembleRefinerInput: ",
              cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
