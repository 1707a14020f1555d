#pragma once

// Geometric verification: matches -> two_view_geometries (the only table the
// mapper reads).

#include "colmap_plugin/database.h"
#include "colmap_plugin/pairs.h"

#include <string>
#include <vector>

namespace l2m {

struct VerificationOptions {
  // "opencv": fundamental matrix by OpenCV's USAC MAGSAC++ in process;
  // "colmap": `colmap matches_importer --match_type pairs` (COLMAP's own
  // estimator: E/F/H with model selection).
  std::string method = "colmap";
  double max_error = 4.0;  // Pixels (COLMAP's default).
  double confidence = 0.999;
  int max_num_trials = 20000;
  double min_inlier_ratio = 0.1;  // colmap method only (hloc's setting).
  int min_num_inliers = 15;
  std::string colmap_path = "colmap";

  bool Check(std::string* error) const;
};

struct VerificationSummary {
  size_t num_pairs = 0;
  size_t num_verified = 0;  // With >= min_num_inliers inliers.
  size_t num_inliers = 0;
  double seconds = 0;
};

// Verifies every pair of `pairs` that has matches, replacing earlier
// geometries of those pairs. `work_dir` receives the pair list and the colmap
// log for the colmap method.
VerificationSummary VerifyPairs(const std::vector<ImagePair>& pairs,
                                const VerificationOptions& options,
                                const std::string& work_dir,
                                Database* database);

}  // namespace l2m
