#pragma once

// The evaluation harness: a matcher over a benchmark's pairs under a named
// protocol, per-pair results written atomically (resumable), then AUCs,
// a Markdown table, cumulative-error curves and pictures of the worst pairs.

#include "datasets/dataset.h"
#include "datasets/estimation.h"
#include "matcher_adapters/matcher.h"

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace l2m {

struct EvalOptions {
  // "roma": K and matches rescaled to long side 1200 (outdoor) / short side
  //   480 (indoor), sample(5000) x 5 runs (resampled per run outdoors, one
  //   sample set reshuffled per run indoors), essential matrix at 0.5 px /
  //   mean of the four focals, failure = 90 deg.
  // "loftr": all matches, one run, threshold 0.5 px / mean(fx0, fy1, fx0,
  //   fy1), original K (indoor: short side 480), failure = inf.
  // Homographies (both): DKM/LoFTR HPatches style, errors in pixels of the
  //   image rescaled to short side 480, threshold 3 px at that scale, corner
  //   error at the centres of the corner pixels (RoMa/DKM sample 5000).
  std::string protocol = "roma";
  EstimatorOptions estimator;
  double pose_threshold_px = 0.5;
  double homography_threshold_px = 3.0;
  // -1 = the protocol's value. "sample" is a uniform random subset for
  // matchers without certainty-balanced sampling; all matches when fewer.
  int num_samples = -1;
  int num_runs = -1;
  // Pictures of this many worst pairs.
  int num_worst_pairs = 5;
  // Evaluate only the first N pairs (0 = all), for quick looks.
  int max_num_pairs = 0;
  int seed = 0;

  bool Check(std::string* error = nullptr) const;
};

std::vector<std::string> KnownProtocols();

struct ProtocolSpec {
  std::string name;
  PairGeometry geometry = PairGeometry::kRelativePose;
  double long_side = 0;   // Rescale to this long side (0 = off).
  double short_side = 0;  // Rescale to this short side (0 = off).
  int num_samples = 0;    // 0 = all matches.
  int num_runs = 1;
  bool resample_per_run = true;
  bool loftr_focal = false;
  double failure_error = 90;
  double threshold_px = 0.5;
  EstimatorOptions estimator;

  // One line for reports: what exactly was run.
  std::string Describe() const;
  std::string DescribeEstimator() const;
};

ProtocolSpec MakeProtocol(const EvalOptions& options, SceneKind scene_kind);

// What one pair gave; serialised to DIR/pairs/<name>.json.
struct PairResult {
  std::string name;
  std::string fingerprint;  // The run's settings; a mismatch re-runs the pair.
  std::string failure;      // Matcher exception text, if any.
  int64_t num_matches = 0;
  double match_seconds = 0;
  // Pose: per run. Homography: one corner error per run (480-scale px).
  std::vector<double> errors;
  std::vector<double> rotation_errors;
  std::vector<double> translation_errors;
  std::vector<int> num_inliers;
  double gt_points_error_px = -1;  // Homography GT points, original px.
  double precision = -1;           // Fraction of correct matches; -1 = no GT.
  // A subset of the matches for pictures: x1 y1 x2 y2 and correctness.
  std::vector<float> vis_matches;
  std::vector<int> vis_correct;

  nlohmann::json ToJson() const;
  static PairResult FromJson(const nlohmann::json& json);
  double MeanError() const;
};

// Matches one pair with `matcher` (sparse: Extract + MatchFeatures; dense:
// MatchDense) and measures it under `spec`. Matcher exceptions become a
// failed pair (errors = failure error), image errors propagate.
PairResult EvaluatePair(const EvalPair& pair,
                        Matcher* matcher,
                        const ProtocolSpec& spec,
                        unsigned seed);

// Runs (or resumes) the whole benchmark into output_dir and returns the
// content of results.json. `fingerprint` identifies the settings: stored
// pair results with another fingerprint are recomputed.
nlohmann::json RunEvaluation(const PairDataset& dataset,
                             Matcher* matcher,
                             const EvalOptions& options,
                             const std::string& output_dir,
                             const std::string& fingerprint,
                             std::ostream* log);

// The summary of per-pair results (keys in percent, see eval_command.h).
nlohmann::json SummarizeResults(const std::vector<PairResult>& results,
                                const ProtocolSpec& spec);

// Draws cumulative error curves (percent of samples with error <= x) with
// axes, labels and a legend into a PNG.
struct ErrorCurve {
  std::string label;
  std::vector<double> errors;
  cv::Scalar color;
};
void DrawErrorCurves(const std::string& path,
                     const std::string& title,
                     const std::string& x_label,
                     double x_max,
                     const std::vector<ErrorCurve>& curves);

}  // namespace l2m
