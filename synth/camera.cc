#include "synth/camera.h"

#include <Eigen/Geometry>

#include <algorithm>
#include <cmath>

namespace l2m {

Eigen::Matrix3d PinholeCamera::K() const {
  Eigen::Matrix3d k;
  k << fx, 0, cx, 0, fy, cy, 0, 0, 1;
  return k;
}

PinholeCamera PinholeCamera::FromFocalFraction(int width,
                                               int height,
                                               double focal_fraction) {
  PinholeCamera camera;
  camera.width = width;
  camera.height = height;
  camera.fx = camera.fy = focal_fraction * width;
  camera.cx = width / 2.0;
  camera.cy = height / 2.0;
  return camera;
}

bool PoseRangeOptions::Check(std::string* error) const {
  for (double v :
       {max_tx, max_ty, max_tz, max_rx_deg, max_ry_deg, max_rz_deg}) {
    if (!std::isfinite(v)) {
      *error = "Pose ranges must be finite";
      return false;
    }
  }
  if (std::max({max_rx_deg, max_ry_deg, max_rz_deg}) > 90) {
    *error =
        "Pose rotation ranges above 90 degrees make no sense for lifted views";
    return false;
  }
  return true;
}

Eigen::Matrix4d SampleCam2FromCam1(const PoseRangeOptions& options,
                                   std::mt19937_64* rng) {
  std::uniform_real_distribution<double> u(0, 1);
  // rand_tensor(r) = sign * (r/2 + r/2 * U); disabled for r < 0.
  auto component = [&](double max) {
    const double sign = u(*rng) < 0.5 ? -1.0 : 1.0;
    const double magnitude = max / 2 + max / 2 * u(*rng);
    return max < 0 ? 0.0 : sign * magnitude;
  };
  const double deg = M_PI / 180;
  const Eigen::Vector3d t(component(options.max_tx),
                          component(options.max_ty),
                          component(options.max_tz));
  const Eigen::Vector3d axis_angle(component(options.max_rx_deg * deg),
                                   component(options.max_ry_deg * deg),
                                   component(options.max_rz_deg * deg));
  Eigen::Matrix3d R = Eigen::Matrix3d::Identity();
  if (axis_angle.norm() > 0)
    R = Eigen::AngleAxisd(axis_angle.norm(), axis_angle.normalized())
            .toRotationMatrix();
  Eigen::Matrix4d T = Eigen::Matrix4d::Identity();
  T.topLeftCorner<3, 3>() = R;
  T.topRightCorner<3, 1>() = t;
  return T;
}

uint64_t SeedFor(uint64_t base_seed, const std::string& name, int index) {
  uint64_t h = 1469598103934665603ull ^ base_seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  h = (h ^ static_cast<uint64_t>(index + 1)) * 1099511628211ull;
  return h;
}

}  // namespace l2m
