#include "l2m_core/model/match_graph.h"

#include <torch/torch.h>

#ifdef L2M_HAVE_CUDA_KERNELS  // LibTorch with CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <vector>

namespace l2m {

struct MatchGraph::Captured {
  std::vector<int64_t> key;  // shapes, dtypes, device, autocast dtype
  bool warmed_up = false;    // the eager warm-up call ran
#ifdef L2M_HAVE_CUDA_KERNELS
  std::optional<c10::cuda::CUDAStream> stream;  // warm-up and capture
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
  std::vector<at::Tensor> inputs;  // the buffers the graph reads
  MatchResult outputs;             // the buffers the graph writes
};

MatchGraph::MatchGraph(RegressionMatcher model) : model_(std::move(model)) {}

MatchGraph::~MatchGraph() = default;

MatchResult MatchGraph::Match(const torch::Tensor& im_A_coarse,
                              const torch::Tensor& im_B_coarse,
                              const torch::Tensor& im_A_up,
                              const torch::Tensor& im_B_up) {
  if (im_A_coarse.dim() != 4 || im_A_coarse.size(0) != 1) {
    throw std::invalid_argument(
        "MatchGraph::Match takes one pair (1, 3, H, W); use MatchBatched");
  }
  MatchResult r = MatchBatched(im_A_coarse, im_B_coarse, im_A_up, im_B_up);
  r.warp = r.warp[0];
  r.certainty = r.certainty[0];
  return r;
}

MatchResult MatchGraph::MatchBatched(const torch::Tensor& im_A_coarse,
                                     const torch::Tensor& im_B_coarse,
                                     const torch::Tensor& im_A_up,
                                     const torch::Tensor& im_B_up) {
  last_replayed_ = false;
  auto eager = [&] {
    return model_->MatchBatched(im_A_coarse, im_B_coarse, im_A_up, im_B_up);
  };
#ifdef L2M_HAVE_CUDA_KERNELS
  const std::vector<at::Tensor> in = {
      im_A_coarse, im_B_coarse, im_A_up, im_B_up};
  // Inference only, as MatchBatched itself.
  torch::NoGradGuard no_grad;
  if (capture_failed_ || !im_A_coarse.is_cuda() || model_->is_training()) {
    return eager();
  }
  std::vector<int64_t> key = {
      im_A_coarse.device().index(),
      at::autocast::is_autocast_enabled(at::kCUDA)
          ? static_cast<int64_t>(at::autocast::get_autocast_dtype(at::kCUDA))
          : -1};
  for (const at::Tensor& t : in) {
    if (!t.defined()) {
      key.push_back(-1);
      continue;
    }
    if (!t.is_cuda() || t.device() != im_A_coarse.device()) return eager();
    key.push_back(static_cast<int64_t>(t.scalar_type()));
    key.insert(key.end(), t.sizes().begin(), t.sizes().end());
  }
  if (!captured_ || captured_->key != key) {
    captured_ = std::make_unique<Captured>();
    captured_->key = key;
  }
  Captured& c = *captured_;
  // Warm-up and capture run on one side stream (the legacy default stream
  // cannot capture), so that the per-stream library state (cuBLAS and
  // cuSOLVER workspaces) exists before the capture, as CUDA graphs need.
  const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream();
  if (!c.stream) c.stream = c10::cuda::getStreamFromPool();
  const c10::cuda::CUDAStream stream = *c.stream;
  auto on_stream = [&](auto fn) {
    at::cuda::CUDAEvent ready, done;
    ready.record(caller);
    ready.block(stream);
    {
      const c10::cuda::CUDAStreamGuard guard(stream);
      fn();
    }
    done.record(stream);
    done.block(caller);
  };
  if (!c.graph && !c.warmed_up) {
    // Warm-up: cuDNN's algorithm search and the weight copies happen here,
    // outside the capture.
    c.warmed_up = true;
    MatchResult r;
    on_stream([&] { r = eager(); });
    // Allocated on the side stream, used by the caller's.
    for (const at::Tensor* t : {&r.warp, &r.certainty}) {
      c10::cuda::CUDACachingAllocator::recordStream(t->storage().data_ptr(),
                                                    caller);
    }
    return r;
  }
  if (!c.graph) {
    for (const at::Tensor& t : in) {
      c.inputs.push_back(t.defined() ? t.clone() : t);
    }
    // The graph's private memory pool cannot reuse blocks the caching
    // allocator holds for eager work (a batch-16 run leaves tens of GiB):
    // hand them back first.
    c10::cuda::CUDACachingAllocator::emptyCache();
    // The autocast cache stays off, so no cast made inside outlives it.
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    try {
      on_stream([&] {
        graph->capture_begin();
        try {
          c.outputs = model_->MatchBatched(
              c.inputs[0], c.inputs[1], c.inputs[2], c.inputs[3]);
        } catch (...) {
          try {
            graph->capture_end();
          } catch (...) {
          }
          throw;
        }
        graph->capture_end();
      });
    } catch (const std::exception& e) {
      at::autocast::set_autocast_cache_enabled(cache);
      std::fprintf(stderr,
                   "l2m: CUDA graph capture of the matcher failed, running "
                   "it eagerly from now on: %s\n",
                   e.what());
      capture_failed_ = true;
      captured_.reset();
      return eager();
    }
    at::autocast::set_autocast_cache_enabled(cache);
    c.graph = std::move(graph);
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].defined()) c.inputs[i].copy_(in[i], /*non_blocking=*/true);
  }
  c.graph->replay();
  last_replayed_ = true;
  MatchResult out;
  out.warp = c.outputs.warp.clone();
  out.certainty = c.outputs.certainty.clone();
  return out;
#else
  return eager();
#endif
}

}  // namespace l2m
