#pragma once

// The L2M / RoMa dense matcher (l2m_core) behind the Matcher interface.

#include "matcher_adapters/matcher.h"

#include <memory>
#include <string>

namespace l2m {

struct L2mMatcherOptions {
  // Graph preset: l2m (672/1344), l2m_560 (560/864), roma_outdoor,
  // roma_indoor, l2m_s (the shipped compact model, 448); or a fixture
  // config.json path (tests, small graphs). Empty: the preset recorded in
  // the weights' safetensors metadata (l2m_preset), else l2m_560.
  std::string preset;
  // Matcher weights: a checkpoint file (.pth/.ckpt/.safetensors) or the name
  // of a model in the l2m model cache (`l2m models import`). Empty: the
  // compact model shipped with l2m (ShippedL2mWeightsPath()), which needs
  // no DINOv2. Loading is strict: any missing, unexpected or mis-shaped key
  // is an error.
  std::string weights;
  // DINOv2 ViT weights, for the presets with a DINOv2 coarse encoder.
  std::string dino_weights;
  // Matches sampled per pair (threshold-balanced, as RoMa's sample()).
  int num_samples = 8000;
  // Matches below this certainty are dropped after sampling.
  double min_certainty = 0.05;
  // "cpu" or "cuda" (or "cuda:N").
  std::string device = "cpu";
  // auto, fp32, fp16 or bf16. auto: fp16 autocast on CUDA (the reference's
  // default; GP and refiner outputs stay fp32), fp32 on the CPU. fp16/bf16
  // need a CUDA device.
  std::string precision = "auto";
  // Intra-op threads on the CPU (0 = all cores).
  int num_threads = 0;
  // Device "cpu": LibTorch's CPU allocator replaced by the huge-page one
  // (UseHugePageCpuAllocator: 2 MiB pages, freed memory kept for reuse) for
  // the rest of the process; docs/PERFORMANCE.md has the measurement.
  bool cpu_huge_pages = true;
  // Device "cuda": the model replayed as one CUDA graph per input shape
  // (MatchGraph; same results, ≈0.9 ms less a pair on an H100). The graph
  // keeps its activation memory (≈3 GiB at 560/864 fp16) for the matcher's
  // lifetime.
  bool cuda_graph = true;
  unsigned seed = 0;

  bool Check(std::string* error = nullptr) const;
};

// The dense output of one pair at the model's output resolution (the
// upsample resolution when the preset upsamples), for pictures and analysis.
struct L2mDenseOutput {
  // CV_32FC4 (H, 2W): the left half holds [x_A, y_A, x_B, y_B] for A's grid
  // (A->B), the right half the same for B's grid (B->A); RoMa's normalised
  // coordinates in [-1, 1] (pixel = W/2 (x + 1)).
  cv::Mat warp;
  // CV_32F (H, 2W) in [0, 1], same layout.
  cv::Mat certainty;
};

class L2mMatcher : public Matcher {
 public:
  // Throws std::runtime_error naming the file when weights are missing or do
  // not fit the preset's graph.
  explicit L2mMatcher(const L2mMatcherOptions& options);
  ~L2mMatcher() override;

  std::string Name() const override { return "l2m"; }
  bool IsDense() const override { return true; }
  PairMatches MatchDense(const MatcherImage& image1,
                         const MatcherImage& image2) override;
  // Also returns the dense warp and certainty (when `dense` is not null).
  PairMatches MatchDense(const MatcherImage& image1,
                         const MatcherImage& image2,
                         L2mDenseOutput* dense);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The compact model shipped in the repository (models/l2m_s.safetensors,
// see models/README.md): $L2M_MODELS_DIR/l2m_s.safetensors when that
// variable is set, else the source tree's models/ folder.
std::string ShippedL2mWeightsPath();

// Checks the options (std::invalid_argument) and the device, then builds the
// matcher.
std::unique_ptr<L2mMatcher> CreateL2mMatcher(const L2mMatcherOptions& options);

}  // namespace l2m
