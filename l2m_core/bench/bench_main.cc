// `l2m_bench`: the benchmark of `l2m bench` for machines that build l2m_core
// alone (LibTorch, no OpenCV/Boost libraries), e.g. the GPU machine.
// Usage: l2m_bench [--preset P ...] [--precision fp16 ...] [--batch 1 4 ...]
//                  [--device cuda] [--images A.jpg B.jpg] [--repeats N]
//                  [--warmup N] [--num_samples N] [--weights F]
//                  [--dino_weights F] [--no_stages] [--no_optimize]
//                  [--cuda_graph] [--graphs_in_flight N]
//                  [--no_full_graph] [--threads N]
//                  [--cpu_huge_pages 0|1]
//                  [--cpu_preprocess] [--profile PREFIX]
//                  [--output report.json]

#include "l2m_core/bench/benchmark.h"
#include "l2m_core/util/file.h"

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  l2m::BenchmarkOptions options;
  std::string output;
  try {
    std::string key;
    std::vector<std::string>* list = nullptr;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg.rfind("--", 0) == 0) {
        key = arg.substr(2);
        list = nullptr;
        if (key == "preset") list = &options.presets;
        if (key == "precision") list = &options.precisions;
        if (key == "images") list = &options.images;
        if (list != nullptr) list->clear();
        if (key == "batch") options.batch_sizes.clear();
        if (key == "no_stages") options.stage_breakdown = false;
        if (key == "no_optimize") options.optimize = false;
        if (key == "cuda_graph") options.cuda_graph = true;
        if (key == "no_full_graph") options.full_path_graph = false;
        if (key == "cpu_preprocess") options.gpu_preprocess = false;
        continue;
      }
      if (list != nullptr) {
        list->push_back(arg);
      } else if (key == "batch") {
        options.batch_sizes.push_back(std::stoi(arg));
      } else if (key == "device") {
        options.device = arg;
      } else if (key == "repeats") {
        options.repeats = std::stoi(arg);
      } else if (key == "warmup") {
        options.warmup = std::stoi(arg);
      } else if (key == "num_samples") {
        options.num_samples = std::stoi(arg);
      } else if (key == "cpu_huge_pages") {
        options.cpu_huge_pages = std::stoi(arg) != 0;
      } else if (key == "graphs_in_flight") {
        options.graphs_in_flight = std::stoi(arg);
      } else if (key == "threads") {
        options.num_threads = std::stoi(arg);
      } else if (key == "weights") {
        options.weights = arg;
      } else if (key == "dino_weights") {
        options.dino_weights = arg;
      } else if (key == "profile") {
        options.profile_prefix = arg;
      } else if (key == "output") {
        output = arg;
      } else {
        throw std::invalid_argument("unknown argument '" + arg + "'");
      }
    }
    const std::string json = l2m::RunBenchmark(options);
    std::cout << json;
    if (!output.empty()) l2m::WriteFileAtomic(output, json);
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
