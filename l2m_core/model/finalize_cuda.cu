#include "l2m_core/model/finalize_cuda.h"
#include "l2m_core/model/storage_dtype_cuda.cuh"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cuda_runtime.h>

namespace l2m {
namespace internal {
namespace {

// A thread a pixel of the 2B input images; image n < B fills the left half
// of pair n's outputs, n ≥ B the right half of pair n − B.
__global__ void FinalizeSymmetricKernel(const float* __restrict__ flow,
                                        Strides fs,
                                        const float* __restrict__ cert,
                                        Strides cs,
                                        const float* __restrict__ low,
                                        Strides ls,
                                        const float* __restrict__ xs,
                                        const float* __restrict__ ys,
                                        float4* __restrict__ warp,
                                        float* __restrict__ cert_out,
                                        int B,
                                        int h,
                                        int w) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y, n = blockIdx.z;
  if (x >= w) return;
  const float* f = flow + n * fs.b + y * fs.y + x * fs.x;
  const float fx = f[0], fy = f[fs.c];
  float c = cert[n * cs.b + y * cs.y + x * cs.x];
  if (low != nullptr) {
    // attenuation = 0.5 · low · (low < 0), as LibTorch evaluates it.
    const float l = low[n * ls.b + y * ls.y + x * ls.x];
    c = c - (0.5f * l) * (l < 0.f ? 1.f : 0.f);
  }
  c = 1.f / (1.f + expf(-c));  // LibTorch's float sigmoid
  const bool wrong = fabsf(fx) > 1.f || fabsf(fy) > 1.f;
  if (wrong) c = 0.f;
  // clamp(−1, 1), NaN kept.
  const float cx = isnan(fx) ? fx : fminf(fmaxf(fx, -1.f), 1.f);
  const float cy = isnan(fy) ? fy : fminf(fmaxf(fy, -1.f), 1.f);
  const float gx = xs[x], gy = ys[y];
  const bool a_side = n < B;
  const int pair = a_side ? n : n - B;
  const long long out =
      (static_cast<long long>(pair) * h + y) * (2 * w) + (a_side ? x : w + x);
  warp[out] =
      a_side ? make_float4(gx, gy, cx, cy) : make_float4(cx, cy, gx, gy);
  cert_out[out] = c;
}

void CheckImage(const at::Tensor& t,
                const char* name,
                int64_t N,
                int64_t C,
                int64_t h,
                int64_t w,
                const at::Tensor& like) {
  TORCH_CHECK(t.device() == like.device() && t.scalar_type() == at::kFloat &&
                  t.dim() == 4 && t.size(0) == N && t.size(1) == C &&
                  t.size(2) == h && t.size(3) == w,
              "FinalizeSymmetric: ",
              name,
              " must be a float32 (",
              N,
              ", ",
              C,
              ", ",
              h,
              ", ",
              w,
              ") tensor on ",
              like.device(),
              ", got ",
              t.scalar_type(),
              " ",
              t.sizes());
}

}  // namespace

void FinalizeSymmetric(const at::Tensor& flow,
                       const at::Tensor& certainty,
                       const at::Tensor& low,
                       const at::Tensor& xs,
                       const at::Tensor& ys,
                       at::Tensor& warp,
                       at::Tensor& certainty_out) {
  TORCH_CHECK(flow.is_cuda() && flow.dim() == 4 && flow.size(0) % 2 == 0,
              "FinalizeSymmetric: flow must be a (2B, 2, h, w) CUDA tensor");
  const int64_t N = flow.size(0), B = N / 2, h = flow.size(2), w = flow.size(3);
  CheckImage(flow, "flow", N, 2, h, w, flow);
  CheckImage(certainty, "certainty", N, 1, h, w, flow);
  if (low.defined()) CheckImage(low, "low", N, 1, h, w, flow);
  TORCH_CHECK(xs.is_contiguous() && xs.numel() == w && ys.is_contiguous() &&
                  ys.numel() == h && xs.scalar_type() == at::kFloat &&
                  ys.scalar_type() == at::kFloat &&
                  xs.device() == flow.device() && ys.device() == flow.device(),
              "FinalizeSymmetric: xs (w) and ys (h) must be contiguous float32 "
              "on the flow's device");
  TORCH_CHECK(warp.is_contiguous() &&
                  warp.sizes() == at::IntArrayRef({B, h, 2 * w, 4}) &&
                  warp.scalar_type() == at::kFloat &&
                  warp.device() == flow.device() &&
                  certainty_out.is_contiguous() &&
                  certainty_out.sizes() == at::IntArrayRef({B, h, 2 * w}) &&
                  certainty_out.scalar_type() == at::kFloat &&
                  certainty_out.device() == flow.device(),
              "FinalizeSymmetric: warp (B, h, 2w, 4) and certainty_out "
              "(B, h, 2w) must be contiguous float32 on the flow's device");
  TORCH_CHECK(N <= 65535 && h <= 65535 && flow.numel() < (int64_t{1} << 31),
              "FinalizeSymmetric: ",
              flow.sizes(),
              " is too large");
  if (flow.numel() == 0) return;
  const c10::cuda::CUDAGuard guard(flow.device());
  constexpr int kBlock = 128;
  const dim3 grid(static_cast<unsigned>((w + kBlock - 1) / kBlock),
                  static_cast<unsigned>(h),
                  static_cast<unsigned>(N));
  FinalizeSymmetricKernel<<<grid,
                            kBlock,
                            0,
                            c10::cuda::getCurrentCUDAStream()>>>(
      flow.data_ptr<float>(),
      StridesOf(flow),
      certainty.data_ptr<float>(),
      StridesOf(certainty),
      low.defined() ? low.data_ptr<float>() : nullptr,
      low.defined() ? StridesOf(low) : Strides{0, 0, 0, 0},
      xs.data_ptr<float>(),
      ys.data_ptr<float>(),
      reinterpret_cast<float4*>(warp.data_ptr<float>()),
      certainty_out.data_ptr<float>(),
      static_cast<int>(B),
      static_cast<int>(h),
      static_cast<int>(w));
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(
      error == cudaSuccess, "FinalizeSymmetric: ", cudaGetErrorString(error));
}

}  // namespace internal
}  // namespace l2m
