#include "l2m_core/bench/benchmark.h"

#include "l2m_core/image/image_codec.h"
#include "l2m_core/image/preprocess.h"
#include "l2m_core/match/sample.h"
#include "l2m_core/model/config.h"
#include "l2m_core/model/match_graph.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/regression_matcher.h"
#include "l2m_core/util/cpu_allocator.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/strict_load.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <thread>

#ifdef L2M_HAVE_C10_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#if __has_include(<torch/csrc/autograd/profiler_kineto.h>)
#include <torch/csrc/autograd/profiler_kineto.h>
#define L2M_HAVE_KINETO 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace {

// Compute per pair of the full-size graph (EVALUATION.md §5: symmetric
// matching, both passes), for the achieved-TFLOP/s column.
double TflopPerPair(const MatcherConfig& c) {
  if (c.coarse_h == 560 && c.upsample_h == 864) return 6.5;
  if (c.coarse_h == 672 && c.upsample_h == 1344) return 12.1;
  return 0.0;  // Unknown size: not reported.
}

at::ScalarType PrecisionType(const std::string& p) {
  if (p == "fp16") return at::kHalf;
  if (p == "bf16") return at::kBFloat16;
  return at::kFloat;
}

struct Stats {
  double median_ms = 0;
  double min_ms = 0;
};

Stats Summarise(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}

class Clock {
 public:
  explicit Clock(bool cuda) : cuda_(cuda) {}
  void Start() {
    if (cuda_) torch::cuda::synchronize();
    t0_ = std::chrono::steady_clock::now();
  }
  double StopMs() {
    if (cuda_) torch::cuda::synchronize();
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - t0_)
        .count();
  }

 private:
  bool cuda_;
  std::chrono::steady_clock::time_point t0_;
};

void ResetPeakMemory(bool cuda) {
#ifdef L2M_HAVE_C10_CUDA
  if (cuda) c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#else
  (void)cuda;
#endif
}

// Peak bytes allocated by LibTorch on GPU 0 since the last reset; -1 where
// unknown (CPU, or a LibTorch without the CUDA allocator).
double PeakMemoryMiB(bool cuda) {
#ifdef L2M_HAVE_C10_CUDA
  if (cuda) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    const auto& peak = stats.allocated_bytes[static_cast<size_t>(
        c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<double>(peak.peak) / (1 << 20);
  }
#else
  (void)cuda;
#endif
  return -1;
}

std::string Number(double v) {
  if (v < 0) return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.3f", v);
  return buffer;
}

// The inputs of one pair on the host: decoded, and resized unless the GPU
// does that (then only the uint8 images are kept).
struct HostPair {
  at::Tensor a_coarse, b_coarse, a_up, b_up;
  at::Tensor a_rgb, b_rgb;  // (H, W, 3) uint8, for GPU preprocessing
};

// Both decodes, then the four resizes, run on their own threads: the
// PIL-exact resize is single-threaded and the host side would otherwise
// take longer than the GPU. For GPU preprocessing the JPEGs decode straight
// into pinned memory, which the upload reads without a staging copy.
HostPair PreparePair(const std::vector<std::string>& images,
                     const MatcherConfig& c,
                     bool pin,
                     bool resize_on_host) {
  auto decode = [pin_it = pin && !resize_on_host](const std::string& path) {
    at::Tensor t;
    DecodeJpegFileInto(path, [&](int height, int width) {
      t = at::empty({height, width, 3},
                    at::TensorOptions(at::kByte).pinned_memory(pin_it));
      return t.data_ptr<uint8_t>();
    });
    return t;
  };
  auto decode_a = std::async(std::launch::async, decode, images[0]);
  const at::Tensor b = decode(images[1]);
  const at::Tensor a = decode_a.get();
  HostPair p;
  if (!resize_on_host) {
    p.a_rgb = a;
    p.b_rgb = b;
    return p;
  }
  auto prep = [&](const at::Tensor* im, int h, int w) {
    at::Tensor t = PreprocessForMatcher(im->data_ptr<uint8_t>(),
                                        static_cast<int>(im->size(0)),
                                        static_cast<int>(im->size(1)),
                                        h,
                                        w,
                                        c.normalize);
    return pin ? t.pin_memory() : t;
  };
  auto a_coarse =
      std::async(std::launch::async, prep, &a, c.coarse_h, c.coarse_w);
  auto b_coarse =
      std::async(std::launch::async, prep, &b, c.coarse_h, c.coarse_w);
  std::future<at::Tensor> a_up, b_up;
  if (c.upsample_preds) {
    a_up = std::async(std::launch::async, prep, &a, c.upsample_h, c.upsample_w);
    b_up = std::async(std::launch::async, prep, &b, c.upsample_h, c.upsample_w);
  }
  p.a_coarse = a_coarse.get();
  p.b_coarse = b_coarse.get();
  if (c.upsample_preds) {
    p.a_up = a_up.get();
    p.b_up = b_up.get();
  }
  return p;
}

// The four model inputs on `device`: uploaded, or (GPU preprocessing)
// resized there from the uploaded uint8 images.
std::vector<at::Tensor> DeviceInputs(const HostPair& host,
                                     const MatcherConfig& c,
                                     const torch::Device& device) {
  auto up = [&](const at::Tensor& t) {
    return t.defined() ? t.to(device, /*non_blocking=*/true) : t;
  };
  if (!host.a_rgb.defined()) {
    return {up(host.a_coarse), up(host.b_coarse), up(host.a_up), up(host.b_up)};
  }
  auto passes = [&](const at::Tensor& rgb) {
    return PreprocessForMatcherPasses(up(rgb),
                                      c.coarse_h,
                                      c.coarse_w,
                                      c.upsample_preds ? c.upsample_h : 0,
                                      c.upsample_w,
                                      c.normalize);
  };
  const MatcherImageInputs a = passes(host.a_rgb), b = passes(host.b_rgb);
  return {a.coarse, b.coarse, a.upsample, b.upsample};
}

// Runs `fn` once under the Kineto profiler (CPU ops, CUDA kernels, the
// ScopedStage user scopes) and saves the Chrome trace to `path`.
template <typename Fn>
void ProfileOnce(const std::string& path, bool cuda, Fn fn) {
#ifdef L2M_HAVE_KINETO
  namespace prof = torch::profiler::impl;
  // With the ops' input shapes, so that kernel_summary.py --ops can say which
  // op (and on what) launched a kernel.
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO,
                                    /*report_input_shapes=*/true);
  std::set<prof::ActivityType> activities = {prof::ActivityType::CPU};
  if (cuda) activities.insert(prof::ActivityType::CUDA);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  fn();
  if (cuda) torch::cuda::synchronize();
  auto result = torch::autograd::profiler::disableProfiler();
  result->save(path);
  std::fprintf(stderr, "profile written to %s\n", path.c_str());
#else
  (void)path;
  (void)cuda;
  (void)fn;
  throw std::runtime_error("bench: this LibTorch has no Kineto profiler");
#endif
}

}  // namespace

void BenchmarkOptions::Check() const {
  if (presets.empty()) throw std::invalid_argument("bench: no preset given");
  for (const std::string& p : precisions) {
    if (p != "fp32" && p != "fp16" && p != "bf16") {
      throw std::invalid_argument("bench: precision '" + p +
                                  "' is not fp32, fp16 or bf16");
    }
  }
  for (int b : batch_sizes) {
    if (b < 1) throw std::invalid_argument("bench: batch sizes must be >= 1");
  }
  if (warmup < 0 || repeats < 1) {
    throw std::invalid_argument("bench: need warmup >= 0 and repeats >= 1");
  }
  if (!images.empty() && images.size() != 2) {
    throw std::invalid_argument("bench: --images takes exactly two JPEGs");
  }
  if (num_samples < 1) throw std::invalid_argument("bench: num_samples >= 1");
  if (graphs_in_flight < 1 || graphs_in_flight > 8) {
    throw std::invalid_argument("bench: graphs_in_flight must be 1 to 8");
  }
}

std::string RunBenchmark(const BenchmarkOptions& options) {
  options.Check();
  const torch::Device device(options.device);
  const bool cuda = device.is_cuda();
  if (cuda && !torch::cuda::is_available()) {
    throw std::runtime_error("bench: --device " + options.device +
                             " but no CUDA device is available");
  }
  // LibTorch's default here is 1 intra-op thread; 0 means all cores.
  at::set_num_threads(options.num_threads > 0
                          ? options.num_threads
                          : static_cast<int>(std::max(
                                1u, std::thread::hardware_concurrency())));
  // Before the model's tensors exist, so that the weights get huge pages too.
  if (!cuda && options.cpu_huge_pages) UseHugePageCpuAllocator();
  if (cuda) {
    // fp32 means fp32: TF32 would change the numbers the parity tests prove.
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setBenchmarkCuDNN(true);
    // cuSOLVER for the GP's Cholesky: MAGMA's batched routines are tuned for
    // small matrices and cannot be captured in a CUDA graph.
    at::globalContext().setLinalgPreferredBackend(at::LinalgBackend::Cusolver);
  }
  torch::NoGradGuard no_grad;
  const bool gpu_preprocess =
      cuda && options.gpu_preprocess && PreprocessForMatcherRunsOnCuda();
  std::ostringstream json;
  json << "{\n  \"libtorch\": \"" << TORCH_VERSION << "\",\n  \"device\": \""
       << options.device << "\",\n  \"cpu_threads\": " << at::get_num_threads()
       << ",\n  \"cpu_huge_pages\": "
       << (HugePageCpuAllocatorInUse() ? "true" : "false")
       << ",\n  \"preprocess\": \"" << (gpu_preprocess ? "gpu" : "host")
       << "\",\n  \"weights\": \""
       << (options.weights.empty() ? "random" : options.weights)
       << "\",\n  \"results\": [";
  bool first_row = true;
  auto row = [&](const std::string& text) {
    json << (first_row ? "\n    " : ",\n    ") << text;
    first_row = false;
  };

  for (const std::string& preset : options.presets) {
    const MatcherConfig config = MatcherConfig::Preset(preset);
    RegressionMatcher model(config);
    if (!options.weights.empty()) {
      LoadStateDictStrict(
          *model, ReadModelWeights(options.weights), options.weights);
    }
    if (!options.dino_weights.empty()) {
      LoadStateDictStrict(*model->dino(),
                          ReadModelWeights(options.dino_weights),
                          options.dino_weights);
    }
    model->eval();
    model->to(device);
    // Channels-last on the CPU too: oneDNN's depthwise 5x5 runs ~9x faster
    // in NHWC at 448² (513 -> 56 ms for 2x20 channels, 1 thread).
    if (options.optimize) model->OptimizeForInference(true);
    const double tflop = TflopPerPair(config);
    for (const std::string& precision : options.precisions) {
      const at::ScalarType dtype = PrecisionType(precision);
      if (!cuda && dtype != at::kFloat) continue;  // Autocast is CUDA-only.
      CudaAutocast autocast(dtype);
      Clock clock(cuda);

      // Model alone, batched.
      for (int batch : options.batch_sizes) {
        torch::manual_seed(0);
        const auto opts = torch::TensorOptions().device(device);
        const at::Tensor a =
            torch::rand({batch, 3, config.coarse_h, config.coarse_w}, opts);
        const at::Tensor b = torch::rand_like(a);
        at::Tensor a_up, b_up;
        if (config.upsample_preds) {
          a_up = torch::rand({batch, 3, config.upsample_h, config.upsample_w},
                             opts);
          b_up = torch::rand_like(a_up);
        }
        std::vector<double> ms;
        bool out_of_memory = false;
        ResetPeakMemory(cuda);
        try {
          for (int i = 0; i < options.warmup + options.repeats; ++i) {
            clock.Start();
            model->MatchBatched(a, b, a_up, b_up);
            const double t = clock.StopMs();
            if (i >= options.warmup) ms.push_back(t / batch);
          }
        } catch (const c10::Error& e) {
          // Too large a batch for this card: say so and go on.
          if (std::string(e.what()).find("out of memory") == std::string::npos)
            throw;
          out_of_memory = true;
        }
        if (out_of_memory) {
          row("{\"preset\": \"" + preset + "\", \"precision\": \"" + precision +
              "\", \"path\": \"model\", \"batch\": " + std::to_string(batch) +
              ", \"error\": \"out of memory\"}");
          std::fprintf(stderr,
                       "%s %s model batch %d: out of memory\n",
                       preset.c_str(),
                       precision.c_str(),
                       batch);
#ifdef L2M_HAVE_C10_CUDA
          if (cuda) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
          continue;
        }
        double graph_ms = -1;
#ifdef L2M_HAVE_C10_CUDA
        if (options.cuda_graph && cuda) {
          // Capture one MatchBatched on static inputs, then replay it: what
          // is left is GPU time without the per-op launch overhead. With
          // graphs_in_flight > 1, that many captures replay at once on their
          // own streams, so one batch's latency-bound stages (the GP's
          // factorisation, the small coarse scales) can share the GPU with
          // another batch's work.
          at::autocast::set_autocast_cache_enabled(false);
          const int in_flight = options.graphs_in_flight;
          std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs;
          std::vector<c10::cuda::CUDAStream> streams;
          for (int g = 0; g < in_flight; ++g) {
            streams.push_back(c10::cuda::getStreamFromPool());
            graphs.push_back(std::make_unique<at::cuda::CUDAGraph>());
            c10::cuda::CUDAStreamGuard guard(streams.back());
            model->MatchBatched(a, b, a_up, b_up);  // Warm-up on the stream.
            streams.back().synchronize();
            graphs.back()->capture_begin();
            const MatchResult captured = model->MatchBatched(a, b, a_up, b_up);
            graphs.back()->capture_end();
            (void)captured;
          }
          std::vector<double> replay;
          for (int i = 0; i < options.warmup + options.repeats; ++i) {
            clock.Start();
            for (int g = 0; g < in_flight; ++g) {
              c10::cuda::CUDAStreamGuard guard(streams[g]);
              graphs[g]->replay();
            }
            const double t = clock.StopMs();
            if (i >= options.warmup) replay.push_back(t / (batch * in_flight));
          }
          graphs.clear();
          at::autocast::set_autocast_cache_enabled(true);
          graph_ms = Summarise(replay).median_ms;
          std::fprintf(stderr,
                       "%s %s model batch %2d as a CUDA graph (%d in "
                       "flight): %.2f ms/pair\n",
                       preset.c_str(),
                       precision.c_str(),
                       batch,
                       options.graphs_in_flight,
                       graph_ms);
        }
#endif
        if (!options.profile_prefix.empty()) {
          ProfileOnce(options.profile_prefix + "_" + preset + "_" + precision +
                          "_b" + std::to_string(batch) + ".json",
                      cuda,
                      [&] { model->MatchBatched(a, b, a_up, b_up); });
        }
        const Stats s = Summarise(ms);
        const double peak = PeakMemoryMiB(cuda);
        std::fprintf(stderr,
                     "%s %s model batch %2d: %8.2f ms/pair (min %.2f), %.1f "
                     "pairs/s, peak %.0f MiB\n",
                     preset.c_str(),
                     precision.c_str(),
                     batch,
                     s.median_ms,
                     s.min_ms,
                     1000.0 / s.median_ms,
                     peak);
        row("{\"preset\": \"" + preset + "\", \"precision\": \"" + precision +
            "\", \"path\": \"model\", \"batch\": " + std::to_string(batch) +
            ", \"ms_per_pair\": " + Number(s.median_ms) +
            ", \"min_ms_per_pair\": " + Number(s.min_ms) +
            ", \"pairs_per_s\": " + Number(1000.0 / s.median_ms) +
            ", \"tflop_per_s\": " +
            (tflop > 0 ? Number(tflop / (s.median_ms / 1000.0)) : "null") +
            ", \"peak_memory_mib\": " + Number(peak) +
            ", \"cuda_graph_ms_per_pair\": " + Number(graph_ms) +
            ", \"graphs_in_flight\": " +
            std::to_string(options.graphs_in_flight) + "}");
      }

      // The full user path, one pair at a time: JPEG decode + PIL-bicubic
      // resize on the CPU, upload, both passes, sample(num_samples), matches
      // back on the host.
      if (!options.images.empty()) {
        std::vector<double> ms, host_ms;
        std::map<std::string, double> stages;
        ResetPeakMemory(cuda);
        // Upload (and resize on the GPU), both passes, sample(num_samples),
        // the matches back on the host.
        // The stages are user scopes, timed only under a StageProfiler (the
        // breakdown run below).
        // As the matcher runs it: on CUDA the model replays as a CUDA graph
        // (MatchGraph) unless --no_full_graph; the stage breakdown runs
        // eagerly (a graph has no stages).
        MatchGraph graph(model);
        const bool use_graph = cuda && options.full_path_graph;
        auto device_part = [&](const HostPair& host, bool eager) {
          std::vector<at::Tensor> in;
          {
            ScopedStage stage(gpu_preprocess ? "upload+resize" : "upload");
            in = DeviceInputs(host, config, device);
          }
          const MatchResult r = use_graph && !eager
                                    ? graph.Match(in[0], in[1], in[2], in[3])
                                    : model->Match(in[0], in[1], in[2], in[3]);
          ScopedStage stage("sample");
          SampleOptions sample;
          sample.sample_thresh = config.sample_thresh;
          sample.seed = 0;
          sample.kde.exact = false;  // as the matcher
          const SampledMatches m =
              Sample(r.warp, r.certainty, options.num_samples, sample);
          (void)m.matches.to(torch::kCPU);
        };
        auto host_part = [&] {
          return PreparePair(options.images, config, cuda, !gpu_preprocess);
        };
        for (int i = 0; i < options.warmup + options.repeats; ++i) {
          clock.Start();
          const auto t0 = std::chrono::steady_clock::now();
          const HostPair host = host_part();
          const double host_t = std::chrono::duration<double, std::milli>(
                                    std::chrono::steady_clock::now() - t0)
                                    .count();
          device_part(host, false);
          const double t = clock.StopMs();
          if (i >= options.warmup) {
            ms.push_back(t);
            host_ms.push_back(host_t);
          }
        }
        const bool replayed = graph.last_replayed();
        // A stream of pairs, as a matcher sees them: the next pair's host
        // side (JPEG decode) runs on a thread while this pair runs on the
        // device. ms/pair here is the interval between finished pairs.
        std::vector<double> pipelined_ms;
        {
          std::future<HostPair> next =
              std::async(std::launch::async, host_part);
          for (int i = 0; i < options.warmup + options.repeats; ++i) {
            clock.Start();
            const HostPair host = next.get();
            next = std::async(std::launch::async, host_part);
            device_part(host, false);
            const double t = clock.StopMs();
            if (i >= options.warmup) pipelined_ms.push_back(t);
          }
          next.wait();
        }
        // Stage timing synchronises the device at every stage boundary: it
        // runs once more, untimed, after the timed runs.
        if (options.stage_breakdown) {
          StageProfiler profiler(cuda);
          device_part(host_part(), true);
          stages = profiler.milliseconds();
        }
        // The full path's kernels (eager, so they fall into their stages).
        if (!options.profile_prefix.empty()) {
          const HostPair host = host_part();
          ProfileOnce(options.profile_prefix + "_" + preset + "_" + precision +
                          "_full.json",
                      cuda,
                      [&] { device_part(host, true); });
        }
        const Stats s = Summarise(ms);
        const Stats h = Summarise(host_ms);
        const double peak = PeakMemoryMiB(cuda);
        std::fprintf(stderr,
                     "%s %s full path%s: %8.2f ms/pair (min %.2f; host %s "
                     "%.2f), %.1f pairs/s, peak %.0f MiB\n",
                     preset.c_str(),
                     precision.c_str(),
                     replayed ? " (CUDA graph)" : "",
                     s.median_ms,
                     s.min_ms,
                     gpu_preprocess ? "decode" : "decode+resize",
                     h.median_ms,
                     1000.0 / s.median_ms,
                     peak);
        std::string text =
            "{\"preset\": \"" + preset + "\", \"precision\": \"" + precision +
            "\", \"path\": \"full\", \"batch\": 1" +
            ", \"ms_per_pair\": " + Number(s.median_ms) +
            ", \"min_ms_per_pair\": " + Number(s.min_ms) +
            ", \"pairs_per_s\": " + Number(1000.0 / s.median_ms) +
            ", \"host_ms\": " + Number(h.median_ms) +
            ", \"cuda_graph\": " + (replayed ? "true" : "false") +
            ", \"peak_memory_mib\": " + Number(peak);
        if (!stages.empty()) {
          text += ", \"stages_ms\": {";
          bool first = true;
          for (const auto& [name, t] : stages) {
            text += std::string(first ? "" : ", ") + "\"" + name +
                    "\": " + Number(t);
            first = false;
            std::fprintf(stderr, "    stage %-28s %8.2f ms\n", name.c_str(), t);
          }
          text += "}";
        }
        row(text + "}");
        const Stats pipe = Summarise(pipelined_ms);
        std::fprintf(stderr,
                     "%s %s full path%s, pipelined (next pair decoded during "
                     "this one): %8.2f ms/pair (min %.2f), %.1f pairs/s\n",
                     preset.c_str(),
                     precision.c_str(),
                     replayed ? " (CUDA graph)" : "",
                     pipe.median_ms,
                     pipe.min_ms,
                     1000.0 / pipe.median_ms);
        row("{\"preset\": \"" + preset + "\", \"precision\": \"" + precision +
            "\", \"path\": \"full_pipelined\", \"batch\": 1" +
            ", \"cuda_graph\": " + (replayed ? "true" : "false") +
            ", \"ms_per_pair\": " + Number(pipe.median_ms) +
            ", \"min_ms_per_pair\": " + Number(pipe.min_ms) +
            ", \"pairs_per_s\": " + Number(1000.0 / pipe.median_ms) + "}");
      }
    }
  }
  json << "\n  ]\n}\n";
  return json.str();
}

}  // namespace l2m
