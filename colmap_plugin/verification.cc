#include "colmap_plugin/verification.h"

#include "colmap_plugin/colmap_runner.h"
#include "l2m_core/util/progress.h"

#include <opencv2/calib3d.hpp>

#include <filesystem>
#include <iostream>
#include <map>
#include <stdexcept>

namespace l2m {
namespace {

DbTwoViewGeometry VerifyWithOpenCv(const std::vector<DbKeypoint>& kps1,
                                   const std::vector<DbKeypoint>& kps2,
                                   const std::vector<DbMatch>& matches,
                                   const VerificationOptions& options) {
  DbTwoViewGeometry g;
  if (static_cast<int>(matches.size()) < std::max(options.min_num_inliers, 8))
    return g;
  std::vector<cv::Point2f> p1, p2;
  p1.reserve(matches.size());
  p2.reserve(matches.size());
  for (const auto& m : matches) {
    p1.emplace_back(kps1.at(m[0]).x, kps1.at(m[0]).y);
    p2.emplace_back(kps2.at(m[1]).x, kps2.at(m[1]).y);
  }
  cv::Mat mask;
  cv::UsacParams params;
  params.confidence = options.confidence;
  params.maxIterations = options.max_num_trials;
  params.threshold = options.max_error;
  params.sampler = cv::SAMPLING_UNIFORM;
  params.score = cv::SCORE_METHOD_MAGSAC;
  params.loMethod = cv::LOCAL_OPTIM_SIGMA;
  params.loIterations = 10;
  params.loSampleSize = 50;
  params.isParallel = false;
  params.randomGeneratorState = 0;  // Deterministic results.
  cv::Mat F = cv::findFundamentalMat(p1, p2, mask, params);
  if (F.empty() || F.rows != 3) return g;
  for (size_t i = 0; i < matches.size(); ++i) {
    if (mask.at<uchar>(static_cast<int>(i)))
      g.inlier_matches.push_back(matches[i]);
  }
  if (static_cast<int>(g.inlier_matches.size()) < options.min_num_inliers) {
    g.inlier_matches.clear();
    return g;
  }
  g.config = static_cast<int>(TwoViewConfig::kUncalibrated);
  g.F.resize(9);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) g.F[3 * r + c] = F.at<double>(r, c);
  }
  return g;
}

}  // namespace

bool VerificationOptions::Check(std::string* error) const {
  if (method != "opencv" && method != "colmap") {
    *error = "method must be 'opencv' or 'colmap', not '" + method + "'";
    return false;
  }
  if (!(max_error > 0) || !(confidence > 0 && confidence < 1) ||
      max_num_trials < 1 || min_num_inliers < 1) {
    *error =
        "need max_error > 0, 0 < confidence < 1, max_num_trials >= 1, "
        "min_num_inliers >= 1";
    return false;
  }
  return true;
}

VerificationSummary VerifyPairs(const std::vector<ImagePair>& pairs,
                                const VerificationOptions& options,
                                const std::string& work_dir,
                                Database* database) {
  std::string error;
  if (!options.Check(&error))
    throw std::invalid_argument("Verification options: " + error);
  Timer timer;
  VerificationSummary summary;
  std::vector<ImagePair> with_matches;
  for (const auto& p : pairs) {
    if (database->ExistsMatches(p.first, p.second)) with_matches.push_back(p);
  }
  summary.num_pairs = with_matches.size();
  if (with_matches.empty()) {
    throw std::runtime_error(
        "Database '" + database->path() +
        "' has no matches for the given pairs: run `l2m match`" +
        " (and `l2m tracks` for a dense matcher) first");
  }
  {
    // Stale geometries of these pairs go first, so COLMAP re-verifies them.
    Database::Transaction t(database);
    for (const auto& p : with_matches) {
      database->Exec("DELETE FROM two_view_geometries WHERE pair_id=" +
                     std::to_string(ImagePairToPairId(p.first, p.second)));
    }
    t.Commit();
  }
  if (options.method == "colmap") {
    std::filesystem::create_directories(work_dir);
    const std::string pairs_path = work_dir + "/verify_pairs.txt";
    WritePairsFile(pairs_path, with_matches, database->ReadAllImages());
    ColmapRunner colmap(options.colmap_path, work_dir + "/colmap.log");
    std::cerr << "verify: colmap matches_importer on " << with_matches.size()
              << " pairs" << std::endl;
    colmap.VerifyMatches(
        database->path(),
        pairs_path,
        {{"max_error", std::to_string(options.max_error)},
         {"confidence", std::to_string(options.confidence)},
         {"max_num_trials", std::to_string(options.max_num_trials)},
         {"min_inlier_ratio", std::to_string(options.min_inlier_ratio)},
         {"min_num_inliers", std::to_string(options.min_num_inliers)}});
  } else {
    Progress progress("verify", static_cast<int64_t>(with_matches.size()));
    std::map<image_t, std::vector<DbKeypoint>> kps;
    auto keypoints = [&](image_t id) -> const std::vector<DbKeypoint>& {
      auto it = kps.find(id);
      if (it == kps.end())
        it = kps.emplace(id, database->ReadKeypoints(id)).first;
      return it->second;
    };
    for (const auto& p : with_matches) {
      const DbTwoViewGeometry g =
          VerifyWithOpenCv(keypoints(p.first),
                           keypoints(p.second),
                           database->ReadMatches(p.first, p.second),
                           options);
      Database::Transaction t(database);
      database->WriteTwoViewGeometry(p.first, p.second, g);
      t.Commit();
      progress.Add();
    }
    progress.Finish();
  }
  for (const auto& p : with_matches) {
    const size_t n =
        database->ReadTwoViewGeometry(p.first, p.second).inlier_matches.size();
    if (n >= static_cast<size_t>(options.min_num_inliers)) {
      ++summary.num_verified;
      summary.num_inliers += n;
    }
  }
  summary.seconds = timer.ElapsedSeconds();
  return summary;
}

}  // namespace l2m
