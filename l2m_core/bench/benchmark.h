#pragma once

// `l2m bench`: ms/pair of the matcher as users run it (decode + resize + both
// passes + certainty attenuation + sample) and of the model alone, per pair
// and batched, at the presets' sizes and precisions, with a per-stage
// breakdown and peak GPU memory, as JSON. Random full-size weights unless a
// checkpoint is given: the timing does not depend on the values.

#include <string>
#include <vector>

namespace l2m {

struct BenchmarkOptions {
  std::vector<std::string> presets = {"l2m_560", "l2m"};
  // fp32, fp16 or bf16 (CUDA autocast; fp32 runs with TF32 off).
  std::vector<std::string> precisions = {"fp16"};
  // Pairs per batch for the model-only timing.
  std::vector<int> batch_sizes = {1, 4, 8, 16};
  std::string device = "cuda";
  int warmup = 2;
  int repeats = 10;
  // Matches drawn per pair in the full path (RoMa's sample()).
  int num_samples = 5000;
  // Two JPEG files for the full path (decode included); empty: full path
  // skipped.
  std::vector<std::string> images;
  std::string weights;       // Matcher checkpoint (empty: random).
  std::string dino_weights;  // ViT checkpoint (empty: random).
  int num_threads = 0;       // CPU intra-op threads (0: all cores).
  bool stage_breakdown = true;
  // RegressionMatcher::OptimizeForInference (BN folding; channels-last on
  // CUDA) before timing.
  bool optimize = true;
  // Model alone also replayed as one CUDA graph per batch size (launch
  // overhead removed; CUDA only).
  bool cuda_graph = false;
  // With cuda_graph: this many captured batches replayed at once, each on
  // its own stream (throughput when several batches are in flight, as a
  // server with more than one worker stream runs them; ms/pair counts every
  // pair of every batch).
  int graphs_in_flight = 1;
  // The full user path with the model replayed as a CUDA graph (MatchGraph,
  // as `l2m match` runs it on CUDA); --no_full_graph runs it eagerly.
  bool full_path_graph = true;
  // --device cpu: LibTorch's CPU allocator replaced by the huge-page one
  // (UseHugePageCpuAllocator; docs/PERFORMANCE.md has the measurement).
  // Once installed it stays for the rest of the process.
  bool cpu_huge_pages = true;
  // Full path on CUDA: the decoded uint8 images are uploaded and resized on
  // the GPU (bit-exact with the host's PIL-exact resize); false: resized on
  // host threads, as before. Needs l2m's CUDA kernels.
  bool gpu_preprocess = true;
  // Non-empty: one more model-only run per preset, precision and batch size
  // under LibTorch's Kineto profiler, its Chrome trace written to
  // PREFIX_<preset>_<precision>_b<batch>.json, and of one full-path pair to
  // PREFIX_<preset>_<precision>_full.json (GPU kernels with the stage scopes
  // around them; scripts/bench/kernel_summary.py sums them).
  std::string profile_prefix;

  void Check() const;
};

// Runs the benchmark, printing progress to stderr; returns the JSON report.
std::string RunBenchmark(const BenchmarkOptions& options);

}  // namespace l2m
