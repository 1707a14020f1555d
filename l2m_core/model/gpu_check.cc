// GPU check of the network (not a test; CI has no GPU):
//  1. the small fixture graph on CUDA in fp32 (TF32 off) against the
//     reference's stored outputs, and the error of fp16 / bf16 autocast;
//  2. ms/pair of the full-size graph with random weights at 560/864 and
//     672/1344, fp32 and autocast, single pair, with peak memory.
// Usage: l2m_gpu_check FIXTURE_DIR (../shared/fixtures/roma_parity) [repeats]
// (repeats 0: parity only)

#include "l2m_core/model/config.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/regression_matcher.h"
#include "l2m_core/weights/key_list.h"
#include "l2m_core/weights/strict_load.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using l2m::MatchResult;

double RelError(const at::Tensor& x,
                const at::Tensor& ref,
                const at::Tensor& skip = at::Tensor()) {
  at::Tensor diff = (x.to(torch::kCPU).to(torch::kFloat) - ref).abs();
  if (skip.defined()) diff = diff.masked_fill(skip.to(torch::kBool), 0);
  return diff.max().item<double>() /
         std::max(ref.abs().max().item<double>(), 1e-12);
}

void Sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

const char* DtypeName(at::ScalarType t) {
  return t == at::kHalf ? "fp16" : t == at::kBFloat16 ? "bf16" : "fp32";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: l2m_gpu_check FIXTURE_DIR [repeats]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string dir = argv[1];
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 10;
  const bool cuda = torch::cuda::is_available();
  const torch::Device device =
      cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  std::printf("LibTorch %s, device %s\n",
              TORCH_VERSION,
              cuda ? "cuda" : "cpu (no CUDA)");
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  torch::NoGradGuard no_grad;

  // 1. Fixture parity.
  {
    l2m::RegressionMatcher model(l2m::LoadFixtureConfig(dir + "/config.json"));
    l2m::LoadStateDictStrict(
        *model,
        l2m::ReadRawTensorBundle(dir + "/weights_matcher.tsv",
                                 dir + "/weights_matcher.bin"),
        "weights_matcher");
    l2m::LoadStateDictStrict(
        *model->dino(),
        l2m::ReadRawTensorBundle(dir + "/weights_dino.tsv",
                                 dir + "/weights_dino.bin"),
        "weights_dino");
    model->eval();
    model->to(device);
    const l2m::StateDict run =
        l2m::ReadRawTensorBundle(dir + "/run_main.tsv", dir + "/run_main.bin");
    const at::Tensor coarse = run.Find("in.coarse")->to(device),
                     up = run.Find("in.upsample")->to(device);
    const at::Tensor ref_warp = *run.Find("final.warp"),
                     ref_cert = *run.Find("final.certainty");
    const at::Tensor ambiguous = *run.Find("final.ambiguous");
    // As loaded, then after OptimizeForInference (folded BN, channels-last,
    // the fused CUDA refiner and VGG paths).
    for (const bool optimized : {false, true}) {
      if (optimized) model->OptimizeForInference(true);
      for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
        if (dtype != at::kFloat && !cuda) continue;
        l2m::SetCudaAutocastDtype(dtype != at::kFloat,
                                  dtype == at::kFloat ? at::kHalf : dtype);
        const MatchResult r = model->Match(coarse[0].unsqueeze(0),
                                           coarse[1].unsqueeze(0),
                                           up[0].unsqueeze(0),
                                           up[1].unsqueeze(0));
        l2m::SetCudaAutocastDtype(false, at::kHalf);
        const double ew = RelError(r.warp, ref_warp);
        const double ec = RelError(r.certainty, ref_cert, ambiguous);
        const bool pass = dtype != at::kFloat || (ew <= 1e-3 && ec <= 1e-3);
        // Share of warp values off by more than 1e-3 (low precision flips the
        // argmax of near-tied anchors: single cells carry the maximum).
        const double off =
            ((r.warp.to(torch::kCPU).to(torch::kFloat) - ref_warp).abs() > 1e-3)
                .to(torch::kFloat)
                .mean()
                .item<double>();
        std::printf(
            "parity %s%s on %s: final.warp rel err %.3g (%.2f%% of values off "
            "> 1e-3), final.certainty rel err %.3g%s\n",
            DtypeName(dtype),
            optimized ? " optimized" : "",
            cuda ? "cuda" : "cpu",
            ew,
            100.0 * off,
            ec,
            dtype == at::kFloat ? (pass ? " (PASS <= 1e-3)" : " (FAIL)") : "");
      }
    }
  }
  if (repeats == 0) return 0;

  // 2. Full-size timing, random weights.
  for (const std::string preset : {"l2m_560", "l2m"}) {
    l2m::MatcherConfig config = l2m::MatcherConfig::Preset(preset);
    l2m::RegressionMatcher model(config);
    model->eval();
    model->to(device);
    torch::manual_seed(0);
    auto opts = torch::TensorOptions().device(device);
    auto a = torch::rand({1, 3, config.coarse_h, config.coarse_w}, opts);
    auto b = torch::rand({1, 3, config.coarse_h, config.coarse_w}, opts);
    auto a_up = torch::rand({1, 3, config.upsample_h, config.upsample_w}, opts);
    auto b_up = torch::rand({1, 3, config.upsample_h, config.upsample_w}, opts);
    for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
      if (!cuda && dtype != at::kFloat) continue;
      l2m::SetCudaAutocastDtype(dtype != at::kFloat,
                                dtype == at::kFloat ? at::kHalf : dtype);
      const int n = cuda ? repeats : 1;
      std::vector<double> ms;
      for (int i = 0; i < n + (cuda ? 2 : 0); ++i) {
        Sync(device);
        const auto t0 = std::chrono::steady_clock::now();
        model->Match(a, b, a_up, b_up);
        Sync(device);
        if (i >= (cuda ? 2 : 0)) {
          ms.push_back(std::chrono::duration<double, std::milli>(
                           std::chrono::steady_clock::now() - t0)
                           .count());
        }
      }
      l2m::SetCudaAutocastDtype(false, at::kHalf);
      std::sort(ms.begin(), ms.end());
      std::printf(
          "full-size %s (%dx%d / %dx%d) %s: median %.1f ms/pair (min %.1f, %d "
          "runs)\n",
          preset.c_str(),
          config.coarse_h,
          config.coarse_w,
          config.upsample_h,
          config.upsample_w,
          DtypeName(dtype),
          ms[ms.size() / 2],
          ms.front(),
          static_cast<int>(ms.size()));
    }
  }
  return 0;
}
