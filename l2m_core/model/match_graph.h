#pragma once

#include "l2m_core/model/regression_matcher.h"

#include <memory>

namespace l2m {

// RegressionMatcher::MatchBatched replayed as a CUDA graph. Every pair a
// matcher meets has the same input shape (the config's coarse and upsample
// sizes), so the whole forward (≈1 000 kernels, side stream included) can be
// captured once and relaunched in one call: the launch gaps between the
// GP's and the refiners' small kernels go away (≈0.9 ms of 31 ms a pair on
// an H100, docs/PERFORMANCE.md).
//
// The first call for an input shape, dtype and autocast state runs eagerly
// (cuDNN picks its algorithms, the low-precision weight copies are made);
// the second captures, then replays like every later call: the inputs are
// copied into the captured buffers and the graph relaunched. A new shape
// captures anew (the old graph is freed). Results are fresh tensors, equal to
// the eager ones bit for bit (the same kernels run in the same order). Where a
// graph cannot be used (a CPU model, a build without CUDA, a model in training
// mode, a capture that fails) it simply runs MatchBatched. The captured graph
// holds its activations' memory (≈3 GiB a pair at 560/864 fp16) until
// destroyed; the model must not be moved or re-optimised while a MatchGraph
// uses it.
class MatchGraph {
 public:
  explicit MatchGraph(RegressionMatcher model);
  ~MatchGraph();
  MatchGraph(const MatchGraph&) = delete;
  MatchGraph& operator=(const MatchGraph&) = delete;

  // As RegressionMatcher::MatchBatched / Match.
  MatchResult MatchBatched(const torch::Tensor& im_A_coarse,
                           const torch::Tensor& im_B_coarse,
                           const torch::Tensor& im_A_up,
                           const torch::Tensor& im_B_up);
  MatchResult Match(const torch::Tensor& im_A_coarse,
                    const torch::Tensor& im_B_coarse,
                    const torch::Tensor& im_A_up,
                    const torch::Tensor& im_B_up);

  // Whether the last call replayed a graph (for benchmarks and tests).
  bool last_replayed() const { return last_replayed_; }

 private:
  struct Captured;

  RegressionMatcher model_;
  std::unique_ptr<Captured> captured_;
  bool capture_failed_ = false;
  bool last_replayed_ = false;
};

}  // namespace l2m
