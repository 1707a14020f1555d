#include "l2m_core/image/preprocess_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace l2m {
namespace internal {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's, as resize.cc
constexpr int kThreads = 256;

__device__ __forceinline__ uint8_t Clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift = floor
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Pillow's fixed-point sum of the n inputs `stride` apart from `in` with
// weights k, rounded and clipped to 8 bits.
__device__ __forceinline__ uint8_t ResampleTap(const uint8_t* in,
                                               long long stride,
                                               int n,
                                               const int32_t* k) {
  int32_t acc = 1 << (kPrecisionBits - 1);
  for (int x = 0; x < n; ++x) {
    acc += static_cast<int32_t>(in[x * stride]) * k[x];
  }
  return Clip8(acc);
}

// out (rows, dst_w, C) from src rows [row_first, row_first + rows).
__global__ void HorizontalPass(const uint8_t* __restrict__ src,
                               int src_w,
                               int channels,
                               int row_first,
                               int rows,
                               int dst_w,
                               const int* __restrict__ first,
                               const int* __restrict__ count,
                               const int32_t* __restrict__ coeffs,
                               int taps,
                               uint8_t* __restrict__ out) {
  const long long idx =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<long long>(rows) * dst_w * channels) return;
  const int c = static_cast<int>(idx % channels);
  const int xx = static_cast<int>((idx / channels) % dst_w);
  const int y =
      static_cast<int>(idx / (static_cast<long long>(channels) * dst_w));
  const uint8_t* in_row =
      src + static_cast<long long>(y + row_first) * src_w * channels;
  out[idx] = ResampleTap(in_row + first[xx] * channels + c,
                         channels,
                         count[xx],
                         coeffs + static_cast<long long>(xx) * taps);
}

// out (dst_h, row) from vin rows (offset by vin_offset).
__global__ void VerticalPass(const uint8_t* __restrict__ vin,
                             long long row,
                             int vin_offset,
                             int dst_h,
                             const int* __restrict__ first,
                             const int* __restrict__ count,
                             const int32_t* __restrict__ coeffs,
                             int taps,
                             uint8_t* __restrict__ out) {
  const long long idx =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= dst_h * row) return;
  const long long i = idx % row;
  const int yy = static_cast<int>(idx / row);
  out[idx] = ResampleTap(vin + (first[yy] - vin_offset) * row + i,
                         row,
                         count[yy],
                         coeffs + static_cast<long long>(yy) * taps);
}

// (h, w, 3) uint8 -> (3, h, w) float32: v / 255, then (v - mean) / std.
__global__ void ToNormalizedFloat(const uint8_t* __restrict__ hwc,
                                  long long pixels,
                                  bool normalize,
                                  float3 mean,
                                  float3 stddev,
                                  float* __restrict__ out) {
  const long long idx =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= 3 * pixels) return;
  const int c = static_cast<int>(idx / pixels);
  const long long p = idx % pixels;
  float v = static_cast<float>(hwc[p * 3 + c]) / 255.0f;
  if (normalize) {
    const float m = c == 0 ? mean.x : (c == 1 ? mean.y : mean.z);
    const float s = c == 0 ? stddev.x : (c == 1 ? stddev.y : stddev.z);
    v = (v - m) / s;
  }
  out[idx] = v;
}

unsigned Blocks(long long n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

struct DeviceTaps {
  at::Tensor first, count, coeffs;
  int taps = 0;
};

// The taps on the device, by content: a matcher resizes photos of a few
// sizes to the same two model sizes, so after the first pair every pass
// finds its taps here instead of uploading three arrays from pageable
// memory (each upload waits for the stream to drain). Never freed (device
// tensors must not outlive the CUDA context at exit); cleared at 64.
DeviceTaps Upload(const PilResampleTaps& t, const at::Device& device) {
  std::vector<int32_t> packed = {t.taps_per_output,
                                 static_cast<int32_t>(t.first.size())};
  packed.insert(packed.end(), t.first.begin(), t.first.end());
  packed.insert(packed.end(), t.count.begin(), t.count.end());
  packed.insert(packed.end(), t.coeffs.begin(), t.coeffs.end());
  using Key = std::pair<int, std::vector<int32_t>>;
  static std::mutex mutex;
  static auto* cache = new std::map<Key, DeviceTaps>();
  const std::lock_guard<std::mutex> lock(mutex);
  Key key(device.index(), std::move(packed));
  const auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  if (cache->size() >= 64) cache->clear();
  const int64_t n = static_cast<int64_t>(t.first.size());
  const at::Tensor all =
      at::tensor(key.second, at::TensorOptions().dtype(at::kInt)).to(device);
  DeviceTaps d;
  d.taps = t.taps_per_output;
  d.first = all.slice(0, 2, 2 + n);
  d.count = all.slice(0, 2 + n, 2 + 2 * n);
  d.coeffs = all.slice(0, 2 + 2 * n);
  cache->emplace(std::move(key), d);
  return d;
}

}  // namespace

at::Tensor PreprocessForMatcherCuda(const at::Tensor& rgb,
                                    const PilResampleTaps& vtaps,
                                    const PilResampleTaps& htaps,
                                    int h,
                                    int w,
                                    bool normalize) {
  TORCH_CHECK(rgb.is_cuda() && rgb.scalar_type() == at::kByte &&
                  rgb.dim() == 3 && rgb.size(2) == 3 && rgb.is_contiguous(),
              "PreprocessForMatcherCuda: expected a contiguous CUDA uint8 "
              "(H, W, 3) tensor");
  const c10::cuda::CUDAGuard guard(rgb.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int src_h = static_cast<int>(rgb.size(0));
  const int src_w = static_cast<int>(rgb.size(1));
  const int channels = 3;
  at::Tensor vin = rgb;
  int vin_offset = 0;
  // The same skips as Pillow (and resize.cc): a pass only where the size
  // changes; the horizontal pass only over the rows the vertical one reads.
  if (src_w != w) {
    const int row_first = src_h != h ? vtaps.first.front() : 0;
    const int row_last =
        src_h != h ? vtaps.first.back() + vtaps.count.back() : src_h;
    const DeviceTaps t = Upload(htaps, rgb.device());
    at::Tensor temp =
        at::empty({row_last - row_first, w, channels}, rgb.options());
    const long long n = temp.numel();
    if (n > 0) {
      HorizontalPass<<<Blocks(n), kThreads, 0, stream>>>(
          rgb.data_ptr<uint8_t>(),
          src_w,
          channels,
          row_first,
          row_last - row_first,
          w,
          t.first.data_ptr<int>(),
          t.count.data_ptr<int>(),
          t.coeffs.data_ptr<int32_t>(),
          t.taps,
          temp.data_ptr<uint8_t>());
    }
    vin = temp;
    vin_offset = row_first;
  }
  at::Tensor resized = vin;
  if (src_h != h) {
    const DeviceTaps t = Upload(vtaps, rgb.device());
    resized = at::empty({h, w, channels}, rgb.options());
    const long long row = static_cast<long long>(w) * channels;
    if (resized.numel() > 0) {
      VerticalPass<<<Blocks(h * row), kThreads, 0, stream>>>(
          vin.data_ptr<uint8_t>(),
          row,
          vin_offset,
          h,
          t.first.data_ptr<int>(),
          t.count.data_ptr<int>(),
          t.coeffs.data_ptr<int32_t>(),
          t.taps,
          resized.data_ptr<uint8_t>());
    }
  }
  resized = resized.contiguous();
  at::Tensor out = at::empty({1, 3, h, w}, rgb.options().dtype(at::kFloat));
  const long long pixels = static_cast<long long>(h) * w;
  // The constants as the CPU path builds them: Python floats cast to float32.
  const float3 mean = make_float3(static_cast<float>(0.485),
                                  static_cast<float>(0.456),
                                  static_cast<float>(0.406));
  const float3 stddev = make_float3(static_cast<float>(0.229),
                                    static_cast<float>(0.224),
                                    static_cast<float>(0.225));
  if (pixels > 0) {
    ToNormalizedFloat<<<Blocks(3 * pixels), kThreads, 0, stream>>>(
        resized.data_ptr<uint8_t>(),
        pixels,
        normalize,
        mean,
        stddev,
        out.data_ptr<float>());
  }
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess,
              "PreprocessForMatcherCuda: ",
              cudaGetErrorString(error));
  return out;
}

}  // namespace internal
}  // namespace l2m
