#include "datasets/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace l2m {
namespace {
constexpr double kRadToDeg = 180.0 / M_PI;
}

std::vector<double> ErrorAuc(std::vector<double> errors,
                             const std::vector<double>& thresholds) {
  std::vector<double> aucs(thresholds.size(), 0.0);
  if (errors.empty()) return aucs;
  for (double& e : errors)
    if (std::isnan(e)) e = std::numeric_limits<double>::infinity();
  std::sort(errors.begin(), errors.end());
  const size_t n = errors.size();
  // The curve with the (0, 0) point prepended, as np.r_[0., errors].
  std::vector<double> e(n + 1, 0.0), r(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) {
    e[i + 1] = errors[i];
    r[i + 1] = static_cast<double>(i + 1) / static_cast<double>(n);
  }
  for (size_t k = 0; k < thresholds.size(); ++k) {
    const double t = thresholds[k];
    // np.searchsorted(e, t): first index with e[i] >= t.
    const size_t last = std::lower_bound(e.begin(), e.end(), t) - e.begin();
    if (last == 0) continue;  // t <= 0.
    double area = 0;
    for (size_t i = 1; i < last; ++i)
      area += 0.5 * (r[i] + r[i - 1]) * (e[i] - e[i - 1]);
    area += r[last - 1] * (t - e[last - 1]);  // Flat to the threshold.
    aucs[k] = area / t;
  }
  return aucs;
}

double RotationErrorDeg(const cv::Matx33d& R_est, const cv::Matx33d& R_gt) {
  const cv::Matx33d M = R_est.t() * R_gt;
  const double c = (M(0, 0) + M(1, 1) + M(2, 2) - 1.0) / 2.0;
  return std::acos(std::clamp(c, -1.0, 1.0)) * kRadToDeg;
}

double TranslationErrorDeg(const cv::Vec3d& t_est, const cv::Vec3d& t_gt) {
  const double n = cv::norm(t_est) * cv::norm(t_gt);
  if (n < 1e-12) return 90.0;
  const double angle =
      std::acos(std::clamp(t_est.dot(t_gt) / n, -1.0, 1.0)) * kRadToDeg;
  return std::min(angle, 180.0 - angle);
}

PoseError ComputePoseError(const cv::Matx33d& R_est,
                           const cv::Vec3d& t_est,
                           const cv::Matx33d& R_gt,
                           const cv::Vec3d& t_gt) {
  PoseError e;
  e.rotation_deg = RotationErrorDeg(R_est, R_gt);
  e.translation_deg = TranslationErrorDeg(t_est, t_gt);
  e.max_deg = std::max(e.rotation_deg, e.translation_deg);
  return e;
}

cv::Matx33d EssentialFromPose(const cv::Matx33d& R, const cv::Vec3d& t) {
  const cv::Matx33d tx(0, -t[2], t[1], t[2], 0, -t[0], -t[1], t[0], 0);
  return tx * R;
}

double SymmetricEpipolarDistanceSq(const cv::Point2d& n1,
                                   const cv::Point2d& n2,
                                   const cv::Matx33d& E) {
  const cv::Vec3d x1(n1.x, n1.y, 1), x2(n2.x, n2.y, 1);
  const cv::Vec3d Ex1 = E * x1;
  const cv::Vec3d Etx2 = E.t() * x2;
  const double d = x2.dot(Ex1);
  const double a = Ex1[0] * Ex1[0] + Ex1[1] * Ex1[1];
  const double b = Etx2[0] * Etx2[0] + Etx2[1] * Etx2[1];
  if (a <= 0 || b <= 0) return std::numeric_limits<double>::infinity();
  return d * d * (1.0 / a + 1.0 / b);
}

cv::Point2d ApplyHomography(const cv::Matx33d& H, const cv::Point2d& p) {
  const cv::Vec3d q = H * cv::Vec3d(p.x, p.y, 1.0);
  if (std::abs(q[2]) < 1e-15) {
    const double inf = std::numeric_limits<double>::infinity();
    return {inf, inf};
  }
  return {q[0] / q[2], q[1] / q[2]};
}

std::vector<cv::Point2d> ImageCornerPixels(int width, int height) {
  return {{0.5, 0.5},
          {0.5, height - 0.5},
          {width - 0.5, 0.5},
          {width - 0.5, height - 0.5}};
}

double HomographyCornerError(const cv::Matx33d& H_est,
                             const cv::Matx33d& H_gt,
                             const std::vector<cv::Point2d>& corners) {
  if (corners.empty()) return 0;
  double sum = 0;
  for (const cv::Point2d& c : corners)
    sum += cv::norm(ApplyHomography(H_est, c) - ApplyHomography(H_gt, c));
  return sum / corners.size();
}

cv::Matx33d ShiftHomography(const cv::Matx33d& H, double offset) {
  const cv::Matx33d T(1, 0, offset, 0, 1, offset, 0, 0, 1);
  const cv::Matx33d T_inv(1, 0, -offset, 0, 1, -offset, 0, 0, 1);
  return T * H * T_inv;
}

}  // namespace l2m
