#include "synth/lifting.h"

#include "l2m_core/util/file.h"
#include "synth/npy.h"

#include <Eigen/Geometry>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <stdexcept>

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

bool LiftingOptions::Check(std::string* error) const {
  if (size < 16) {
    *error = "Lifting.size must be >= 16";
    return false;
  }
  if (!(min_focal_fraction > 0 && max_focal_fraction >= min_focal_fraction)) {
    *error = "Lifting focal fractions need 0 < min <= max";
    return false;
  }
  if (!(disparity_offset > 0)) {
    *error = "Lifting.disparity_offset must be > 0 (depth = 1/disparity)";
    return false;
  }
  if (!(alpha_scale > 0) || !(alpha_threshold > 0 && alpha_threshold < 1)) {
    *error = "Lifting.alpha_scale must be > 0 and alpha_threshold in (0, 1)";
    return false;
  }
  if (!(input_scale > 0)) {
    *error = "Lifting.input_scale must be > 0";
    return false;
  }
  return true;
}

cv::Mat ReadColorImage(const std::string& path) {
  if (!FileExists(path))
    throw std::runtime_error("Image '" + path + "' does not exist");
  const std::string bytes = ReadBinaryFile(path);
  cv::Mat image;
  try {
    image = cv::imdecode(cv::Mat(1,
                                 static_cast<int>(bytes.size()),
                                 CV_8U,
                                 const_cast<char*>(bytes.data())),
                         cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty())
    throw std::runtime_error("Image '" + path +
                             "' is corrupt or not an image OpenCV can decode");
  return image;
}

cv::Mat ReadDepthInput(const std::string& path, const LiftingOptions& options) {
  if (!FileExists(path))
    throw std::runtime_error("Depth/disparity file '" + path +
                             "' does not exist");
  const std::string ext = std::filesystem::path(path).extension().string();
  cv::Mat raw;
  if (ext == ".npy") {
    raw = ReadNpy(path);
  } else if (ext == ".npz") {
    raw = ReadNpz(path);
  } else {
    const std::string bytes = ReadBinaryFile(path);
    try {
      raw = cv::imdecode(cv::Mat(1,
                                 static_cast<int>(bytes.size()),
                                 CV_8U,
                                 const_cast<char*>(bytes.data())),
                         cv::IMREAD_ANYDEPTH | cv::IMREAD_GRAYSCALE);
    } catch (const cv::Exception&) {
      raw.release();
    }
    if (raw.empty())
      throw std::runtime_error("Depth/disparity file '" + path +
                               "' is corrupt or not a readable image");
  }
  if (raw.channels() != 1)
    throw std::runtime_error("Depth/disparity file '" + path + "' has " +
                             std::to_string(raw.channels()) +
                             " channels; expected a single-channel map");
  if (raw.rows < 2 || raw.cols < 2)
    throw std::runtime_error("Depth/disparity file '" + path +
                             "' is not a 2-D map");
  const bool integer = raw.depth() != CV_32F && raw.depth() != CV_64F;
  cv::Mat out;
  raw.convertTo(out, CV_32F, integer ? options.input_scale : 1.0);
  const float invalid =
      static_cast<float>(integer ? options.invalid_value * options.input_scale
                                 : options.invalid_value);
  for (int r = 0; r < out.rows; ++r) {
    float* row = out.ptr<float>(r);
    for (int c = 0; c < out.cols; ++c) {
      if (!std::isfinite(row[c]) ||
          (options.invalid_value >= 0 && row[c] == invalid))
        row[c] = std::numeric_limits<float>::quiet_NaN();
    }
  }
  return out;
}

cv::Mat ResizeAndCenterCrop(const cv::Mat& image, int size, bool nearest) {
  const double scale =
      static_cast<double>(size) / std::min(image.rows, image.cols);
  const int w =
      std::max(size, static_cast<int>(std::lround(image.cols * scale)));
  const int h =
      std::max(size, static_cast<int>(std::lround(image.rows * scale)));
  cv::Mat resized;
  if (w == image.cols && h == image.rows) {
    resized = image;
  } else {
    const int interp = nearest
                           ? cv::INTER_NEAREST
                           : (scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::resize(image, resized, cv::Size(w, h), 0, 0, interp);
  }
  const int x0 = (w - size) / 2, y0 = (h - size) / 2;
  return resized(cv::Rect(x0, y0, size, size)).clone();
}

cv::Mat NormalizeDisparity(const cv::Mat& raw, const LiftingOptions& options) {
  CV_Assert(raw.type() == CV_32F);
  cv::Mat disp = raw.clone();
  if (options.input_kind == DepthInputKind::kDepth) {
    for (auto it = disp.begin<float>(); it != disp.end<float>(); ++it)
      *it = (*it > 0) ? 1.0f / *it : std::numeric_limits<float>::quiet_NaN();
  }
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (auto it = disp.begin<float>(); it != disp.end<float>(); ++it) {
    if (!std::isfinite(*it)) continue;
    lo = std::min(lo, *it);
    hi = std::max(hi, *it);
  }
  if (!(hi >= lo)) throw std::runtime_error("no valid disparity value");
  const float range = hi > lo ? hi - lo : 1.0f;
  const float offset = static_cast<float>(options.disparity_offset);
  for (auto it = disp.begin<float>(); it != disp.end<float>(); ++it)
    if (std::isfinite(*it)) *it = (*it - lo) / range + offset;
  return disp;
}

cv::Mat DisparityToDepth(const cv::Mat& disparity) {
  cv::Mat depth(disparity.size(), CV_32F);
  for (int r = 0; r < depth.rows; ++r) {
    const float* d = disparity.ptr<float>(r);
    float* z = depth.ptr<float>(r);
    for (int c = 0; c < depth.cols; ++c)
      z[c] = (std::isfinite(d[c]) && d[c] > 0) ? 1.0f / d[c] : 0.0f;
  }
  return depth;
}

cv::Mat VisibleVertexMask(const cv::Mat& disparity,
                          const LiftingOptions& options) {
  // kornia.filters.sobel: normalised 3x3 kernels (sum |k| = 8), replicate
  // border, magnitude sqrt(gx^2 + gy^2).
  cv::Mat gx, gy;
  cv::Sobel(disparity, gx, CV_32F, 1, 0, 3, 1.0 / 8, 0, cv::BORDER_REPLICATE);
  cv::Sobel(disparity, gy, CV_32F, 0, 1, 3, 1.0 / 8, 0, cv::BORDER_REPLICATE);
  cv::Mat mask(disparity.size(), CV_8U);
  const double threshold =
      -std::log(options.alpha_threshold) / options.alpha_scale;
  for (int r = 0; r < mask.rows; ++r) {
    const float* x = gx.ptr<float>(r);
    const float* y = gy.ptr<float>(r);
    const float* d = disparity.ptr<float>(r);
    uint8_t* m = mask.ptr<uint8_t>(r);
    for (int c = 0; c < mask.cols; ++c) {
      const double g = std::sqrt(x[c] * x[c] + y[c] * y[c]);
      m[c] = (std::isfinite(d[c]) && g < threshold) ? 255 : 0;
    }
  }
  return mask;
}

cv::Mat ProceduralDisparity(int width, int height, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  cv::Mat disp(height, width, CV_32F);
  // Ground plane: disparity of a plane is affine in the pixel coordinates,
  // zero-ish at the horizon.
  const double horizon = (0.25 + 0.25 * u(rng)) * height;
  const double ground_gain = 0.35 + 0.35 * u(rng);
  const double ground_tilt = (u(rng) - 0.5) * 0.2;
  // Smooth relief: a few random low-frequency sinusoids.
  double ax[3], fx[3], fy[3], ph[3];
  for (int k = 0; k < 3; ++k) {
    ax[k] = 0.01 + 0.02 * u(rng);
    fx[k] = (0.5 + 2.5 * u(rng)) * 2 * M_PI / width;
    fy[k] = (0.5 + 2.5 * u(rng)) * 2 * M_PI / height;
    ph[k] = 2 * M_PI * u(rng);
  }
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const double x = c + 0.5, y = r + 0.5;
      double d = 0.02;
      if (y > horizon)
        d += ground_gain * (y - horizon) / (height - horizon) +
             ground_tilt * (x / width - 0.5) * (y - horizon) / height;
      double relief = 0;
      for (int k = 0; k < 3; ++k)
        relief += ax[k] * std::sin(fx[k] * x + fy[k] * y + ph[k]);
      disp.at<float>(r, c) =
          static_cast<float>(std::max(0.005, d + relief * (y > horizon)));
    }
  }
  // Layers standing on the ground (nearer wins, as in a z-buffer): boxes and
  // ellipses with slanted-plane disparity, borders are discontinuities.
  const int layers = 2 + static_cast<int>(u(rng) * 4);
  for (int l = 0; l < layers; ++l) {
    const double w = (0.12 + 0.3 * u(rng)) * width;
    const double h = (0.2 + 0.45 * u(rng)) * height;
    const double x0 = u(rng) * (width - w);
    const double bottom = horizon + (0.1 + 0.9 * u(rng)) * (height - horizon);
    const double y0 = std::max(0.0, bottom - h);
    const bool ellipse = u(rng) < 0.4;
    const double base = 0.02 +
                        ground_gain * (bottom - horizon) / (height - horizon) +
                        0.05 + 0.15 * u(rng);
    const double slope_x = (u(rng) - 0.5) * 0.3 / width;
    for (int r = static_cast<int>(y0); r < std::min<int>(height, bottom); ++r) {
      for (int c = static_cast<int>(x0); c < std::min<int>(width, x0 + w);
           ++c) {
        const double x = c + 0.5, y = r + 0.5;
        if (ellipse) {
          const double ex = (x - x0 - w / 2) / (w / 2);
          const double ey = (y - y0 - (bottom - y0) / 2) / ((bottom - y0) / 2);
          if (ex * ex + ey * ey > 1) continue;
        }
        const float d = static_cast<float>(base + slope_x * (x - x0 - w / 2));
        float& cur = disp.at<float>(r, c);
        cur = std::max(cur, d);
      }
    }
  }
  double lo, hi;
  cv::minMaxLoc(disp, &lo, &hi);
  disp = (disp - lo) / std::max(1e-6, hi - lo) + 1e-3;
  return disp;
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
