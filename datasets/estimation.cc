#include "datasets/estimation.h"

#include <opencv2/calib3d.hpp>

#include <stdexcept>

namespace l2m {
namespace {

int OpenCvMethod(const std::string& method) {
  if (method == "ransac") return cv::RANSAC;
  if (method == "magsac") return cv::USAC_MAGSAC;
  if (method == "lo-ransac") return cv::USAC_DEFAULT;
  throw std::invalid_argument("unknown estimator '" + method +
                              "' (known: ransac, magsac, lo-ransac)");
}

}  // namespace

std::vector<std::string> KnownEstimators() {
  return {"ransac", "magsac", "lo-ransac"};
}

bool EstimatorOptions::Check(std::string* error) const {
  std::string why;
  if (method != "ransac" && method != "magsac" && method != "lo-ransac")
    why = "Estimator.method must be ransac, magsac or lo-ransac, not '" +
          method + "'";
  else if (!(confidence > 0 && confidence < 1))
    why = "Estimator.confidence must be in (0, 1)";
  else if (max_iterations < 0)
    why = "Estimator.max_iterations must be >= 0";
  if (error) *error = why;
  return why.empty();
}

RelativePoseEstimate EstimateRelativePose(const std::vector<cv::Point2d>& n1,
                                          const std::vector<cv::Point2d>& n2,
                                          double threshold,
                                          const EstimatorOptions& options) {
  RelativePoseEstimate result;
  if (n1.size() < 5 || n1.size() != n2.size()) return result;
  const int method = OpenCvMethod(options.method);
  const cv::Mat I = cv::Mat::eye(3, 3, CV_64F);
  cv::Mat mask;
  cv::Mat E;
  try {
    E = cv::findEssentialMat(
        n1,
        n2,
        I,
        method,
        options.confidence,
        threshold,
        options.max_iterations > 0 ? options.max_iterations : 1000,
        mask);
  } catch (const cv::Exception&) {
    return result;  // Degenerate input: a failed pair, as in the references.
  }
  if (E.empty() || E.cols != 3 || E.rows % 3 != 0) return result;
  int best = 0;
  for (int k = 0; k < E.rows / 3; ++k) {
    cv::Mat R, t;
    const int n = cv::recoverPose(
        E.rowRange(3 * k, 3 * k + 3), n1, n2, I, R, t, 1e9, mask);
    if (n > best) {
      best = n;
      result.success = true;
      result.R = cv::Matx33d(R);
      result.t = cv::Vec3d(t);
      result.num_inliers = n;
    }
  }
  return result;
}

HomographyEstimate EstimateHomography(const std::vector<cv::Point2d>& p1,
                                      const std::vector<cv::Point2d>& p2,
                                      double threshold_px,
                                      const EstimatorOptions& options) {
  HomographyEstimate result;
  if (p1.size() < 4 || p1.size() != p2.size()) return result;
  cv::Mat mask;
  cv::Mat H;
  try {
    H = cv::findHomography(
        p1,
        p2,
        OpenCvMethod(options.method),
        threshold_px,
        mask,
        options.max_iterations > 0 ? options.max_iterations : 2000,
        options.confidence);
  } catch (const cv::Exception&) {
    return result;
  }
  if (H.empty()) return result;
  result.success = true;
  result.H = cv::Matx33d(H);
  result.num_inliers = cv::countNonZero(mask);
  return result;
}

}  // namespace l2m
