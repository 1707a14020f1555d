// CPU timing of the full-size L2M++ graph (random weights) on one pair.
// Usage: l2m_bench_model [threads=2] [preset=l2m_560] [repeats=1] [coarse]
// [upsample]

#include "l2m_core/model/regression_matcher.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::string preset = argc > 2 ? argv[2] : "l2m_560";
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 1;
  // Line-buffered so a run cut short by a timeout still reports its stages.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // LibTorch defaults to one thread here (PLATFORM.md): set it explicitly.
  at::set_num_threads(threads);
  torch::NoGradGuard no_grad;

  auto t0 = std::chrono::steady_clock::now();
  l2m::MatcherConfig config = l2m::MatcherConfig::Preset(preset);
  // Optional square sizes, e.g. a quick end-to-end run of the full graph at 112
  // / 160.
  if (argc > 4) config.coarse_h = config.coarse_w = std::atoi(argv[4]);
  if (argc > 5) config.upsample_h = config.upsample_w = std::atoi(argv[5]);
  l2m::RegressionMatcher matcher(config);
  matcher->eval();
  std::printf(
      "preset %s, coarse %dx%d, upsample %dx%d, %d threads; built in %.2f s\n",
      preset.c_str(),
      config.coarse_h,
      config.coarse_w,
      config.upsample_h,
      config.upsample_w,
      threads,
      Seconds(t0));

  torch::manual_seed(0);
  auto a = torch::rand({1, 3, config.coarse_h, config.coarse_w});
  auto b = torch::rand({1, 3, config.coarse_h, config.coarse_w});
  auto a_up = torch::rand({1, 3, config.upsample_h, config.upsample_w});
  auto b_up = torch::rand({1, 3, config.upsample_h, config.upsample_w});
  // Stage timings of the coarse encoder (the largest single cost on the CPU).
  t0 = std::chrono::steady_clock::now();
  matcher->dino()->forward(torch::cat({a, b}));
  std::printf("DINOv2 on the coarse pair: %.2f s\n", Seconds(t0));
  t0 = std::chrono::steady_clock::now();
  matcher->encoder()->forward(torch::cat({a_up, b_up}), /*upsample=*/true);
  std::printf("VGG19-BN on the upsample pair: %.2f s\n", Seconds(t0));
  for (int i = 0; i < repeats; ++i) {
    t0 = std::chrono::steady_clock::now();
    const l2m::MatchResult r = matcher->Match(a, b, a_up, b_up);
    std::printf("pair %d: %.2f s (warp %ldx%ldx%ld)\n",
                i,
                Seconds(t0),
                static_cast<long>(r.warp.size(0)),
                static_cast<long>(r.warp.size(1)),
                static_cast<long>(r.warp.size(2)));
  }
  return 0;
}
