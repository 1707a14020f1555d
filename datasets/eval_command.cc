#include "datasets/eval_command.h"

#include "colmap_plugin/option_manager.h"
#include "colmap_plugin/reconstruction.h"
#include "datasets/dataset.h"
#include "datasets/evaluation.h"
#include "matcher_adapters/matcher_factory.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace l2m {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The settings that change results, from the command line itself: every
// option except where results go and how many pictures are drawn. Sorted, so
// the order of options does not matter.
std::string Fingerprint(int argc, char** argv) {
  static const std::vector<std::string> kIgnored = {"output_path",
                                                    "Eval.num_worst_pairs",
                                                    "Eval.max_num_pairs",
                                                    "log_level",
                                                    "help"};
  std::vector<std::string> items;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0) continue;
    key = key.substr(2);
    std::string value;
    const size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      value = argv[++i];
    }
    if (std::find(kIgnored.begin(), kIgnored.end(), key) != kIgnored.end())
      continue;
    items.push_back(key + "=" + value);
  }
  std::sort(items.begin(), items.end());
  std::string out;
  for (const std::string& s : items) out += s + ";";
  return out;
}

}  // namespace

int RunEvalCommand(int argc, char** argv) {
  std::string benchmark, data_path, output_path, matcher_name;
  EvalOptions eval;
  MatcherOptions matcher_options;
  MatchingOptions unused_matching;  // AddMatcherOptions registers it too.
  OptionManager options(
      "eval",
      "Evaluates a matcher on a benchmark: relative pose AUC@5/10/20 deg "
      "(scannet_pairs, scannet1500, megadepth1500) or homography corner "
      "AUC@3/5/10 px "
      "(homography).\nWrites DIR/results.json, results.md, curves.png, "
      "worst_pairs/*.png and pairs/*.json (reruns skip finished pairs).");
  options.AddRequired(
      "benchmark", &benchmark, "One of: " + JoinNames(KnownBenchmarks()) + ".");
  options.AddRequired(
      "data_path", &data_path, "The benchmark's folder (or pair-list file).");
  options.AddRequired(
      "output_path", &output_path, "Output folder (created; reruns resume).");
  options.Add(
      "matcher",
      &matcher_name,
      "Shorthand for --Matcher.type: " + JoinNames(KnownMatcherTypes()) + ".");
  options.Add(
      "Eval.protocol",
      &eval.protocol,
      "roma (K rescaled to long side 1200 outdoors / short side 480 indoors, "
      "sample(5000) x 5 runs, failure 90 deg) or loftr (all matches, 1 run, "
      "failure inf).");
  options.Add("Eval.estimator",
              &eval.estimator.method,
              "ransac, magsac or lo-ransac (OpenCV).");
  options.Add(
      "Eval.confidence", &eval.estimator.confidence, "RANSAC confidence.");
  options.Add("Eval.max_iterations",
              &eval.estimator.max_iterations,
              "RANSAC iterations (0 = OpenCV's default, as the references).");
  options.Add(
      "Eval.pose_threshold_px",
      &eval.pose_threshold_px,
      "Essential-matrix threshold in pixels of the protocol's rescaled image.");
  options.Add("Eval.homography_threshold_px",
              &eval.homography_threshold_px,
              "Homography threshold in pixels at short side 480.");
  options.Add("Eval.num_samples",
              &eval.num_samples,
              "Matches sampled per run (-1 = protocol: roma 5000, loftr all).");
  options.Add("Eval.num_runs",
              &eval.num_runs,
              "Runs per pair (-1 = protocol: roma 5, loftr 1).");
  options.Add("Eval.num_worst_pairs",
              &eval.num_worst_pairs,
              "Pictures of the N worst pairs.");
  options.Add("Eval.max_num_pairs",
              &eval.max_num_pairs,
              "Only the first N pairs (0 = all).");
  options.Add("Eval.seed", &eval.seed, "Seed of the sampling.");
  AddMatcherOptions(&options, &matcher_options, &unused_matching);
  if (!options.Parse(argc, argv)) return 0;
  if (options.WasSet("matcher")) matcher_options.type = matcher_name;

  std::string why;
  if (!eval.Check(&why)) throw std::invalid_argument(why);
  const PairDataset dataset = CreateDataset(benchmark, data_path);
  std::unique_ptr<Matcher> matcher = CreateMatcher(matcher_options);
  std::filesystem::create_directories(output_path);
  const nlohmann::json summary = RunEvaluation(dataset,
                                               matcher.get(),
                                               eval,
                                               output_path,
                                               Fingerprint(argc, argv),
                                               &std::cout);
  return summary["num_pairs"].get<int>() > 0 ? 0 : 1;
}

}  // namespace l2m
