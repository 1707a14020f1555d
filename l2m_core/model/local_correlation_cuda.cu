#include "l2m_core/model/local_correlation_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace l2m {
namespace internal {
namespace {

// One thread per (b, k, i, j); consecutive threads walk j, so the reads of
// f0 and of f1 around the warp target are coalesced. grid_sample's
// bilinear, zero-padded, align_corners=False sampling, in float32.
__global__ void LocalCorrelationForward(const float* __restrict__ f0,
                                        const float* __restrict__ f1,
                                        const float* __restrict__ coords,
                                        const float* __restrict__ offsets,
                                        float* __restrict__ out,
                                        int B,
                                        int C,
                                        int K,
                                        int h,
                                        int w,
                                        int H,
                                        int W) {
  const long long index =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long total = static_cast<long long>(B) * K * h * w;
  if (index >= total) return;
  const int j = static_cast<int>(index % w);
  const int i = static_cast<int>((index / w) % h);
  const int k = static_cast<int>((index / (static_cast<long long>(w) * h)) % K);
  const int b = static_cast<int>(index / (static_cast<long long>(w) * h * K));
  const long long pixel = (static_cast<long long>(b) * h + i) * w + j;
  const float gx = coords[2 * pixel] + offsets[2 * k];
  const float gy = coords[2 * pixel + 1] + offsets[2 * k + 1];
  // grid_sampler_compute_source_index (align_corners=False).
  const float ix = ((gx + 1.f) * W - 1.f) / 2.f;
  const float iy = ((gy + 1.f) * H - 1.f) / 2.f;
  const int x0 = static_cast<int>(floorf(ix)),
            y0 = static_cast<int>(floorf(iy));
  const int x1 = x0 + 1, y1 = y0 + 1;
  const float w_nw = (x1 - ix) * (y1 - iy), w_ne = (ix - x0) * (y1 - iy);
  const float w_sw = (x1 - ix) * (iy - y0), w_se = (ix - x0) * (iy - y0);
  const bool in_x0 = x0 >= 0 && x0 < W, in_x1 = x1 >= 0 && x1 < W;
  const bool in_y0 = y0 >= 0 && y0 < H, in_y1 = y1 >= 0 && y1 < H;
  const long long plane = static_cast<long long>(H) * W;
  const float* f1b = f1 + static_cast<long long>(b) * C * plane;
  const float* f0p = f0 + static_cast<long long>(b) * C * h * w +
                     static_cast<long long>(i) * w + j;
  const long long o_nw = static_cast<long long>(y0) * W + x0;
  float acc = 0.f;
  for (int c = 0; c < C; ++c) {
    const float* p = f1b + c * plane;
    float v = 0.f;
    if (in_y0 && in_x0) v += w_nw * p[o_nw];
    if (in_y0 && in_x1) v += w_ne * p[o_nw + 1];
    if (in_y1 && in_x0) v += w_sw * p[o_nw + W];
    if (in_y1 && in_x1) v += w_se * p[o_nw + W + 1];
    acc += f0p[static_cast<long long>(c) * h * w] * v;
  }
  out[index] = acc;
}

}  // namespace

bool HaveLocalCorrelationKernel() { return true; }

at::Tensor LocalCorrelationKernel(const at::Tensor& f0,
                                  const at::Tensor& f1,
                                  const at::Tensor& coords,
                                  const at::Tensor& offsets) {
  TORCH_CHECK(
      f0.is_cuda() && f1.is_cuda() && coords.is_cuda() && offsets.is_cuda(),
      "LocalCorrelationKernel: CUDA tensors expected");
  TORCH_CHECK(f0.scalar_type() == at::kFloat &&
                  f1.scalar_type() == at::kFloat &&
                  coords.scalar_type() == at::kFloat &&
                  offsets.scalar_type() == at::kFloat,
              "LocalCorrelationKernel: float32 expected");
  const c10::cuda::CUDAGuard guard(f0.device());
  const at::Tensor a = f0.contiguous(), s = f1.contiguous(),
                   g = coords.contiguous(), o = offsets.contiguous();
  const int B = static_cast<int>(a.size(0)), C = static_cast<int>(a.size(1));
  const int h = static_cast<int>(a.size(2)), w = static_cast<int>(a.size(3));
  const int H = static_cast<int>(s.size(2)), W = static_cast<int>(s.size(3));
  const int K = static_cast<int>(o.size(0));
  at::Tensor out = at::empty({B, K, h, w}, a.options());
  const long long total = static_cast<long long>(B) * K * h * w;
  if (total == 0) return out;
  constexpr int kThreads = 256;
  const long long blocks = (total + kThreads - 1) / kThreads;
  LocalCorrelationForward<<<static_cast<unsigned>(blocks),
                            kThreads,
                            0,
                            c10::cuda::getCurrentCUDAStream()>>>(
      a.data_ptr<float>(),
      s.data_ptr<float>(),
      g.data_ptr<float>(),
      o.data_ptr<float>(),
      out.data_ptr<float>(),
      B,
      C,
      K,
      h,
      w,
      H,
      W);
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess,
              "LocalCorrelationKernel: ",
              cudaGetErrorString(error));
  return out;
}

}  // namespace internal
}  // namespace l2m
