// Throughput of the on-the-fly training pairs (not a test): pairs/s with 1
// and 2 worker threads over real photos, as JSON on stdout.
//
//   synth_pairs_benchmark [--list FILE] [--size 448] [--pairs 40]
//                         [--threads 1,2] [--relight 0|1] [--jitter 0|1]
//                         [--debug_dir DIR --num_debug 6]
//
// --list defaults to $L2M_SHARED_DIR (else the configured L2M_SHARED_DIR)
// /data/single_view/all_images.tsv (the first column of a TSV or one path per
// line, relative to the list).

#include "l2m_core/image/image_codec.h"
#include "synth/train_pairs.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace l2m;
  std::string list;
  if (const char* shared = std::getenv("L2M_SHARED_DIR"))
    list = std::string(shared) + "/data/single_view/all_images.tsv";
  else
    list = L2M_DEFAULT_SHARED_DIR "/data/single_view/all_images.tsv";
  int size = 448, pairs = 40, num_debug = 6;
  std::vector<int> thread_counts = {1, 2};
  bool relight = true, jitter = true;
  std::string debug_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--list") {
      list = value;
    } else if (key == "--size") {
      size = std::stoi(value);
    } else if (key == "--pairs") {
      pairs = std::stoi(value);
    } else if (key == "--threads") {
      thread_counts.clear();
      std::stringstream ss(value);
      for (std::string item; std::getline(ss, item, ',');)
        thread_counts.push_back(std::stoi(item));
    } else if (key == "--relight") {
      relight = value == "1";
    } else if (key == "--jitter") {
      jitter = value == "1";
    } else if (key == "--debug_dir") {
      debug_dir = value;
    } else if (key == "--num_debug") {
      num_debug = std::stoi(value);
    } else {
      std::cerr << "unknown option " << key << "\n";
      return 2;
    }
  }
  // The pairs' own tensor ops are tiny: no intra-op thread pool.
  at::set_num_threads(1);
  PhotoPairOptions options;
  options.image_list = list;
  options.height = options.width = size;
  options.relight = relight;
  options.photometric_jitter = jitter;
  std::unique_ptr<PhotoPairSource> source;
  try {
    source = std::make_unique<PhotoPairSource>(options);
  } catch (const std::exception& e) {
    std::cerr << "synth_pairs_benchmark: " << e.what() << "\n";
    return 1;
  }
  if (!debug_dir.empty()) {
    for (int i = 0; i < num_debug; ++i) {
      const std::string path =
          debug_dir + "/pair_" + std::to_string(i) + ".png";
      WritePngFile(path, DrawTrainingPair(source->Get(1000 + i)));
      std::cerr << "wrote " << path << "\n";
    }
  }
  // Warm-up (page faults of the first buffers, the libraries' first calls).
  source->Get(0);
  std::ostringstream json;
  json << "{\"size\": " << size << ", \"photos\": " << source->Size()
       << ", \"relight\": " << relight << ", \"jitter\": " << jitter
       << ", \"hardware_threads\": " << std::thread::hardware_concurrency()
       << ", \"runs\": [";
  for (size_t r = 0; r < thread_counts.size(); ++r) {
    const int threads = thread_counts[r];
    std::atomic<int64_t> next{1};
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&] {
        for (int64_t i; (i = next++) <= pairs;) source->Get(i);
      });
    for (auto& w : workers) w.join();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    const double cpu = ProcessCpuSeconds() - cpu0;
    json << (r ? ", " : "") << "{\"threads\": " << threads
         << ", \"pairs\": " << pairs << ", \"seconds\": " << wall
         << ", \"pairs_per_s\": " << pairs / wall
         << ", \"cpu_ms_per_pair\": " << 1000 * cpu / pairs << "}";
  }
  json << "]}";
  std::cout << json.str() << std::endl;
  return 0;
}
