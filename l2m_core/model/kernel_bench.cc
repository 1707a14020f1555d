// GPU timing of l2m's refiner kernels at the shapes the shipped presets run
// (not a test; CUDA builds only): each kernel alone, median of repeated
// launches, with the bytes it must move and the bandwidth that implies; then
// the GP's SPD solve by route and block size, replayed as a CUDA graph as
// the matcher runs it; then the local correlation by route, on a smooth
// warp and on a torn (random) one.
// Usage: l2m_kernel_bench [pairs=8] [repeats=20] [only: blocks|gp|lc]

#include "l2m_core/model/gp.h"
#include "l2m_core/model/local_correlation_cuda.h"
#include "l2m_core/model/refiner_block_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include <functional>
#include <string>
#include <vector>

namespace {

struct Case {
  const char* name;
  bool fused;  // RefinerBlockFused, else DepthwiseBiasRelu
  int size;    // H = W
  int channels;
};

// RoMa / L2M at 560/864: the upsample pass's scales 2 and 1 (one kernel a
// block), and the wide blocks' depthwise at each scale of both passes.
const Case kCases[] = {
    {"fused s2 864", true, 432, 144},
    {"fused s1 864", true, 864, 24},
    {"fused s2 560", true, 280, 144},
    {"fused s1 560", true, 560, 24},
    {"dw s4 864", false, 216, 576},
    {"dw s8 864", false, 108, 1144},
    {"dw s4 560", false, 140, 576},
    {"dw s8 560", false, 70, 1144},
    {"dw s16 560", false, 35, 1384},
};

double MedianMs(int repeats, const std::function<void()>& fn) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  fn();  // warm-up (and lazy attribute setting)
  std::vector<float> ms;
  for (int i = 0; i < repeats; ++i) {
    cudaEventRecord(start, stream);
    fn();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

// `fn` captured once in a CUDA graph, then the median of its replays.
double GraphMs(int repeats, const std::function<void()>& fn) {
  at::cuda::CUDAGraph graph;
  {
    const at::cuda::CUDAStream side = at::cuda::getStreamFromPool();
    const at::cuda::CUDAStreamGuard guard(side);
    fn();  // warm-up outside the capture (workspaces, handles)
    graph.capture_begin();
    fn();
    graph.capture_end();
  }
  return MedianMs(repeats, [&] { graph.replay(); });
}

// The GP's A⁻¹ f (512 basis functions) for the two matrices of one pair and
// the 2·pairs of a batch: cuSOLVER's factorisation (one by one for ≤ 2
// matrices, batched above: the route before session 11) against
// BlockCholesky at several block sizes (≤ 160: its diagonal steps in
// CholeskyInverseBlockCuda; above: cuSOLVER and cuBLAS).
void BenchGpSolve(int pairs, int repeats) {
  const auto f32 = torch::dtype(torch::kFloat).device(torch::kCUDA);
  const int64_t m = 512;
  // n = 1600 support cells at 560 (coarse 40²), 2304 at 672 (48²).
  for (const auto& [n, B] : {std::pair<int64_t, int64_t>{1600, 2},
                             {1600, 2 * pairs},
                             {2304, 2},
                             {2304, 2 * pairs}}) {
    torch::manual_seed(2);
    const at::Tensor y = torch::randn({B, n, 512}, f32);
    const at::Tensor A =
        l2m::CosKernel(y, y, 0.2) + 1e-2 * torch::eye(n, f32).unsqueeze(0);
    const at::Tensor f = torch::randn({B, n, m}, f32);
    at::Tensor x;
    auto report = [&](const std::string& route, double ms) {
      std::printf("gp solve n %4ld %-16s %2ld matrices: %7.3f ms  x sum %.6e\n",
                  static_cast<long>(n),
                  route.c_str(),
                  static_cast<long>(B),
                  ms,
                  x.sum().item<double>());
    };
    report("cusolver", GraphMs(repeats, [&] {
             at::Tensor L;
             if (B <= 2) {
               std::vector<at::Tensor> factors;
               for (int64_t b = 0; b < B; ++b) {
                 factors.push_back(std::get<0>(at::linalg_cholesky_ex(A[b])));
               }
               L = torch::stack(factors);
             } else {
               L = std::get<0>(at::linalg_cholesky_ex(A.transpose(-2, -1)));
             }
             x = l2m::BlockCholeskySolve(L, f, n == 1600 ? 200 : 256);
           }));
    const std::vector<int64_t> blocks =
        n == 1600 ? std::vector<int64_t>{100, 160, 200, 320}
                  : std::vector<int64_t>{128, 144, 192, 256};
    for (const int64_t block : blocks) {
      report("block " + std::to_string(block), GraphMs(repeats, [&] {
               x = l2m::BlockCholeskySolve(l2m::BlockCholesky(A, block), f);
             }));
    }
  }
}

// The local correlation at the scales RoMa / L2M run it at 560/864 (2·pairs
// images, fp16), by route: the tensor-core tiles (kAuto) and per query.
// Warps: "smooth" (zoom 1.1, rotation 0.1 rad, ~0.3 px noise: a matched
// region) and "torn" (every target uniform over the image: the worst case,
// where tiles fall back to the per-query route).
void BenchLocalCorrelation(int pairs, int repeats) {
  struct LcCase {
    const char* name;
    int size, channels, radius;
  };
  const LcCase cases[] = {{"s16 560", 35, 512, 7},
                          {"s8 560", 70, 512, 3},
                          {"s4 560", 140, 256, 2},
                          {"s8 864", 108, 512, 3},
                          {"s4 864", 216, 256, 2}};
  const auto f16 = torch::dtype(torch::kHalf).device(torch::kCUDA);
  const auto f32 = torch::dtype(torch::kFloat).device(torch::kCUDA);
  using l2m::internal::LocalCorrelationRoute;
  for (const LcCase& c : cases) {
    const int64_t B = 2 * pairs, n = c.size;
    torch::manual_seed(3);
    const at::Tensor f0 = torch::randn({B, n, n, c.channels}, f16)
                              .permute({0, 3, 1, 2});  // channels-last
    const at::Tensor f1 =
        torch::randn({B, n, n, c.channels}, f16).permute({0, 3, 1, 2});
    const at::Tensor t = (torch::arange(n, f32) * 2 + 1) / double(n) - 1;
    const auto g = torch::meshgrid({t, t}, "ij");
    const double zoom = 1.1, angle = 0.1;
    const at::Tensor smooth =
        (torch::stack(
             {zoom * (std::cos(angle) * g[1] - std::sin(angle) * g[0]),
              zoom * (std::sin(angle) * g[1] + std::cos(angle) * g[0])},
             -1)
             .unsqueeze(0) +
         0.6 / n * torch::randn({B, n, n, 2}, f32))
            .contiguous();
    const at::Tensor torn = torch::rand({B, n, n, 2}, f32) * 2 - 1;
    for (const auto& [warp, coords] :
         {std::pair<const char*, at::Tensor>{"smooth", smooth},
          {"torn", torn}}) {
      at::Tensor routes, out_tiles, out_query;
      const double tiles_ms = MedianMs(repeats, [&] {
        out_tiles = l2m::internal::LocalCorrelationKernel(
            f0, f1, coords, c.radius, 1, LocalCorrelationRoute::kAuto);
      });
      l2m::internal::LocalCorrelationKernel(
          f0, f1, coords, c.radius, 1, LocalCorrelationRoute::kAuto, &routes);
      const double query_ms = MedianMs(repeats, [&] {
        out_query = l2m::internal::LocalCorrelationKernel(
            f0, f1, coords, c.radius, 1, LocalCorrelationRoute::kPerQuery);
      });
      const at::Tensor r = routes.cpu();
      std::printf(
          "local corr %-8s %-6s %2d pairs: tiles %7.3f ms, per query %7.3f "
          "ms; tiles %d tensor / %d per query; max|diff| %.2e\n",
          c.name,
          warp,
          pairs,
          tiles_ms,
          query_ms,
          r[0].item<int>(),
          r[1].item<int>(),
          (out_tiles.to(torch::kFloat) - out_query.to(torch::kFloat))
              .abs()
              .max()
              .item<double>());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "l2m_kernel_bench: no CUDA device\n");
    return 1;
  }
  const int pairs = argc > 1 ? std::atoi(argv[1]) : 8;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string only = argc > 3 ? argv[3] : "";
  if (!only.empty() && only != "blocks" && only != "gp" && only != "lc") {
    std::fprintf(
        stderr,
        "l2m_kernel_bench: the third argument is blocks, gp or lc, got "
        "'%s'\n",
        only.c_str());
    return 1;
  }
  torch::NoGradGuard no_grad;
  const auto f16 = torch::dtype(torch::kHalf).device(torch::kCUDA);
  const auto f32 = torch::dtype(torch::kFloat).device(torch::kCUDA);
  for (const Case& c : kCases) {
    if (!only.empty() && only != "blocks") break;
    const int64_t B = 2 * pairs, P = c.channels;
    torch::manual_seed(1);
    const at::Tensor x = torch::randn({B, c.size, c.size, P}, f16);
    at::Tensor y = torch::empty_like(x);
    const at::Tensor dw_w = torch::randn({25, P}, f32) * 0.1;
    const at::Tensor dw_b = torch::randn({P}, f32) * 0.1;
    const at::Tensor pw_w = (torch::randn({P, P}, f32) * 0.1).to(torch::kHalf);
    const at::Tensor pw_b = torch::randn({P}, f32) * 0.1;
    const double ms = MedianMs(repeats, [&] {
      if (c.fused) {
        l2m::internal::RefinerBlockFused(x, dw_w, dw_b, pw_w, pw_b, y);
      } else {
        l2m::internal::DepthwiseBiasRelu(x, dw_w, dw_b, y);
      }
    });
    const double bytes = 2.0 * x.numel() * x.element_size();  // read + write
    // A sum of the output's bit patterns (same seeded inputs every run):
    // kernel variants meant to give the same bits print the same sum.
    const long long sum =
        y.view(torch::kShort).to(torch::kLong).sum().item<int64_t>();
    std::printf("%-14s %2d pairs: %8.3f ms/block  %6.0f GB/s  sum %lld\n",
                c.name,
                pairs,
                ms,
                bytes / (ms * 1e-3) / 1e9,
                sum);
  }
  if (only.empty() || only == "gp") BenchGpSolve(pairs, repeats);
  if (only.empty() || only == "lc") BenchLocalCorrelation(pairs, repeats);
  return 0;
}
