#include "synth/lifting.h"

#include "l2m_core/util/file.h"
#include "synth/npy.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace l2m {

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
  const std::vector<float> raw =
      ProceduralDisparityUnnormalized(width, height, seed);
  cv::Mat disp(height, width, CV_32F);
  std::copy(raw.begin(), raw.end(), disp.ptr<float>());
  // The cv::Mat expression's rounding is what existing outputs were made
  // with; keep it here (the cv-free ProceduralDisparityValues rounds alike to
  // within an ulp).
  double lo, hi;
  cv::minMaxLoc(disp, &lo, &hi);
  disp = (disp - lo) / std::max(1e-6, hi - lo) + 1e-3;
  return disp;
}

}  // namespace l2m
