#pragma once

// The error measures and the AUC of the SuperGlue / LoFTR / RoMa benchmarks.
// Pixel arguments are COLMAP pixels (top-left pixel centre at (0.5, 0.5));
// "normalised" coordinates are K^-1 applied to 0-based pixel centres.

#include <opencv2/core.hpp>

#include <vector>

namespace l2m {

// Area under the recall-vs-error curve up to each threshold, divided by the
// threshold, exactly as SuperGlue/LoFTR/RoMa compute it (errors sorted,
// recall (i+1)/n, a (0, 0) point prepended, the curve cut at the threshold
// with the recall reached below it, trapezoidal integration). Fractions in
// [0, 1]; infinite errors count as misses. Empty input gives zeros.
std::vector<double> ErrorAuc(std::vector<double> errors,
                             const std::vector<double>& thresholds);

// Angle of R_est^T R_gt in degrees (0..180).
double RotationErrorDeg(const cv::Matx33d& R_est, const cv::Matx33d& R_gt);

// Angle between translation directions in degrees, folded to <= 90 because an
// essential matrix fixes t only up to sign. 90 when either vector is ~zero.
double TranslationErrorDeg(const cv::Vec3d& t_est, const cv::Vec3d& t_gt);

struct PoseError {
  double rotation_deg = 0;
  double translation_deg = 0;
  double max_deg = 0;  // The pose error of the benchmarks.
};
PoseError ComputePoseError(const cv::Matx33d& R_est,
                           const cv::Vec3d& t_est,
                           const cv::Matx33d& R_gt,
                           const cv::Vec3d& t_gt);

// E = [t]x R for x2^T E x1 = 0 (cam2_from_cam1 = (R, t)).
cv::Matx33d EssentialFromPose(const cv::Matx33d& R, const cv::Vec3d& t);

// LoFTR's symmetric epipolar distance (sum of the squared distances of each
// point to the other's epipolar line) in normalised coordinates; LoFTR counts
// a match correct below 5e-4.
double SymmetricEpipolarDistanceSq(const cv::Point2d& n1,
                                   const cv::Point2d& n2,
                                   const cv::Matx33d& E);

// Projects p with H (homogeneous). Returns (inf, inf) at infinity.
cv::Point2d ApplyHomography(const cv::Matx33d& H, const cv::Point2d& p);

// The centres of the four corner pixels of a width x height image in COLMAP
// pixels: the corners DKM/LoFTR's HPatches protocol uses ((0,0)..(w-1,h-1)
// in 0-based pixels).
std::vector<cv::Point2d> ImageCornerPixels(int width, int height);

// Mean distance between the points mapped by H_est and by H_gt.
double HomographyCornerError(const cv::Matx33d& H_est,
                             const cv::Matx33d& H_gt,
                             const std::vector<cv::Point2d>& corners);

// H expressed in another pixel convention: x' = x + offset in both images
// (offset +0.5 turns 0-based pixel coordinates into COLMAP pixels, -0.5 turns
// 1-based ones into COLMAP pixels).
cv::Matx33d ShiftHomography(const cv::Matx33d& H, double offset);

}  // namespace l2m
