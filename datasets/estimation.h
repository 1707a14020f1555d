#pragma once

// Robust two-view estimation as the benchmarks run it, with the estimator as
// a choice: it moves pose AUC more than most matcher changes (EVALUATION.md).

#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace l2m {

struct EstimatorOptions {
  // "ransac"    cv::RANSAC (what SuperGlue/LoFTR/RoMa report),
  // "magsac"    cv::USAC_MAGSAC (MAGSAC++),
  // "lo-ransac" cv::USAC_DEFAULT (LO-RANSAC with SPRT).
  std::string method = "ransac";
  double confidence = 0.99999;
  // 0 = OpenCV's default for the estimator (1000 for essential matrices,
  // 2000 for homographies, as the reference scripts run them).
  int max_iterations = 0;

  bool Check(std::string* error = nullptr) const;
};

std::vector<std::string> KnownEstimators();

struct RelativePoseEstimate {
  bool success = false;
  cv::Matx33d R = cv::Matx33d::eye();  // cam2_from_cam1.
  cv::Vec3d t = cv::Vec3d(0, 0, 0);    // Unit direction.
  int num_inliers = 0;
};

// Essential matrix from normalised coordinates (K^-1 x) with `threshold` in
// normalised units, then recoverPose on every candidate E keeping the one
// with the most cheirality inliers, passing one mask through all candidates
// as cv2's in-place mask does in the reference scripts. Fewer than 5 points
// or no candidate with inliers is a failure.
RelativePoseEstimate EstimateRelativePose(const std::vector<cv::Point2d>& n1,
                                          const std::vector<cv::Point2d>& n2,
                                          double threshold,
                                          const EstimatorOptions& options);

struct HomographyEstimate {
  bool success = false;
  cv::Matx33d H = cv::Matx33d::eye();  // image2_from_image1.
  int num_inliers = 0;
};

// Homography from pixel coordinates with `threshold_px` reprojection error.
HomographyEstimate EstimateHomography(const std::vector<cv::Point2d>& p1,
                                      const std::vector<cv::Point2d>& p2,
                                      double threshold_px,
                                      const EstimatorOptions& options);

}  // namespace l2m
