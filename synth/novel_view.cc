#include "synth/novel_view.h"

#include <opencv2/imgproc.hpp>
#include <opencv2/photo.hpp>

#include <cmath>
#include <limits>
#include <random>

namespace l2m {

bool NovelViewOptions::Check(std::string* error) const {
  if (!(inpaint_radius > 0)) {
    *error = "Views.inpaint_radius must be > 0";
    return false;
  }
  if (inpaint_scale < 1 || inpaint_scale > 16) {
    *error = "Views.inpaint_scale must be in [1, 16]";
    return false;
  }
  if (!(visibility_threshold > 0 && visibility_threshold <= 1)) {
    *error = "Views.visibility_threshold must be in (0, 1]";
    return false;
  }
  return raster.Check(error);
}

LiftedImage LiftImage(const cv::Mat& image,
                      const cv::Mat& normalized_disparity,
                      const PinholeCamera& camera,
                      const LiftingOptions& options) {
  CV_Assert(image.type() == CV_8UC3 && normalized_disparity.type() == CV_32F);
  CV_Assert(image.size() == normalized_disparity.size());
  CV_Assert(camera.width == image.cols && camera.height == image.rows);
  LiftedImage lifted;
  lifted.image = image;
  lifted.depth = DisparityToDepth(normalized_disparity);
  lifted.vertex_visible = VisibleVertexMask(normalized_disparity, options);
  lifted.camera = camera;
  return lifted;
}

std::vector<Eigen::Vector3f> UnprojectDepth(const cv::Mat& depth,
                                            const PinholeCamera& camera) {
  std::vector<Eigen::Vector3f> points(static_cast<size_t>(depth.rows) *
                                      depth.cols);
  const double ifx = 1 / camera.fx, ify = 1 / camera.fy;
  for (int r = 0; r < depth.rows; ++r) {
    const float* z = depth.ptr<float>(r);
    const float y = static_cast<float>((r + 0.5 - camera.cy) * ify);
    for (int c = 0; c < depth.cols; ++c) {
      const float x = static_cast<float>((c + 0.5 - camera.cx) * ifx);
      points[static_cast<size_t>(r) * depth.cols + c] =
          Eigen::Vector3f(x * z[c], y * z[c], z[c]);
    }
  }
  return points;
}

namespace {

// Telea at 1/scale resolution: each block is the mean of its known pixels,
// blocks without any are the holes to fill; the fill is upsampled into the
// full-resolution holes only.
cv::Mat InpaintCoarse(const cv::Mat& image,
                      const cv::Mat& hole_mask,
                      double radius,
                      int scale) {
  const cv::Size small((image.cols + scale - 1) / scale,
                       (image.rows + scale - 1) / scale);
  cv::Mat known, weighted, color_sum, weight_sum;
  cv::threshold(hole_mask, known, 0, 1, cv::THRESH_BINARY_INV);
  known.convertTo(known, CV_32F);
  image.convertTo(weighted, CV_32FC3);
  cv::Mat known3;
  cv::merge(std::vector<cv::Mat>{known, known, known}, known3);
  weighted = weighted.mul(known3);
  cv::resize(weighted, color_sum, small, 0, 0, cv::INTER_AREA);
  cv::resize(known, weight_sum, small, 0, 0, cv::INTER_AREA);
  cv::Mat small_image(small, CV_8UC3), small_holes(small, CV_8U);
  for (int r = 0; r < small.height; ++r) {
    for (int c = 0; c < small.width; ++c) {
      const float w = weight_sum.at<float>(r, c);
      const cv::Vec3f sum = color_sum.at<cv::Vec3f>(r, c);
      small_holes.at<uint8_t>(r, c) = w > 1e-6f ? 0 : 255;
      for (int ch = 0; ch < 3; ++ch)
        small_image.at<cv::Vec3b>(r, c)[ch] =
            w > 1e-6f ? cv::saturate_cast<uint8_t>(sum[ch] / w) : 0;
    }
  }
  cv::Mat small_filled = small_image;
  if (cv::countNonZero(small_holes) > 0)
    cv::inpaint(small_image,
                small_holes,
                small_filled,
                std::max(1.0, radius / scale),
                cv::INPAINT_TELEA);
  cv::Mat upsampled;
  cv::resize(small_filled, upsampled, image.size(), 0, 0, cv::INTER_LINEAR);
  cv::Mat out = image.clone();
  upsampled.copyTo(out, hole_mask);
  return out;
}

}  // namespace

NovelView RenderNovelView(const LiftedImage& source,
                          const PinholeCamera& camera2,
                          const Eigen::Matrix4d& cam2_from_cam1,
                          const NovelViewOptions& options) {
  const int rows = source.depth.rows, cols = source.depth.cols;
  const PinholeCamera& camera1 = source.camera;
  // Unprojection and the rigid transform in one pass: the point of pixel
  // (r, c) is z * R * ray(r, c) + t, and R * ray splits into a per-column
  // and a per-row term.
  const Eigen::Matrix3f R = cam2_from_cam1.topLeftCorner<3, 3>().cast<float>();
  const Eigen::Vector3f t = cam2_from_cam1.topRightCorner<3, 1>().cast<float>();
  std::vector<Eigen::Vector3f> column_term(cols);
  for (int c = 0; c < cols; ++c)
    column_term[c] =
        R.col(0) * static_cast<float>((c + 0.5 - camera1.cx) / camera1.fx);
  // Per-thread scratch, reused across views (no page faults per view); named
  // through references, as a thread_local name inside the worker lambdas
  // would denote the worker's own instance.
  thread_local std::vector<Eigen::Vector3f> points_buffer;
  thread_local std::vector<uint8_t> valid_buffer;
  thread_local Fragments fragments_buffer;
  std::vector<Eigen::Vector3f>& points = points_buffer;
  std::vector<uint8_t>& valid = valid_buffer;  // Unknown depth (z = 0).
  Fragments& fragments = fragments_buffer;
  points.resize(static_cast<size_t>(rows) * cols);
  valid.resize(points.size());
  ParallelFor(rows, options.raster.num_threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const Eigen::Vector3f row_term =
          R.col(1) * static_cast<float>((r + 0.5 - camera1.cy) / camera1.fy) +
          R.col(2);
      const float* z = source.depth.ptr<float>(r);
      const size_t base = static_cast<size_t>(r) * cols;
      for (int c = 0; c < cols; ++c) {
        valid[base + c] = z[c] > 0;
        points[base + c] = z[c] * (column_term[c] + row_term) + t;
      }
    }
  });
  RasterizeGridMesh(
      points, rows, cols, valid.data(), camera2, options.raster, &fragments);

  NovelView view;
  view.camera = camera2;
  view.cam2_from_cam1 = cam2_from_cam1;
  view.raw_image = cv::Mat::zeros(camera2.height, camera2.width, CV_8UC3);
  view.hole_mask =
      cv::Mat(camera2.height, camera2.width, CV_8U, cv::Scalar(255));
  view.depth = cv::Mat::zeros(camera2.height, camera2.width, CV_32F);
  CV_Assert(source.image.isContinuous() &&
            source.vertex_visible.isContinuous());
  const cv::Vec3b* colors = source.image.ptr<cv::Vec3b>();
  const uint8_t* visible = source.vertex_visible.ptr<uint8_t>();
  const float threshold = static_cast<float>(options.visibility_threshold);
  ParallelFor(camera2.height, options.raster.num_threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      cv::Vec3b* out = view.raw_image.ptr<cv::Vec3b>(r);
      uint8_t* hole = view.hole_mask.ptr<uint8_t>(r);
      float* depth = view.depth.ptr<float>(r);
      for (int c = 0; c < camera2.width; ++c) {
        const int index = r * camera2.width + c;
        if (!fragments.Covered(index)) continue;
        int v[3];
        GridFaceVertices(fragments.face[index], cols, v);
        const float w1 = fragments.weight1[index],
                    w2 = fragments.weight2[index];
        const float w0 = 1 - w1 - w2;
        const float vis =
            (w0 * visible[v[0]] + w1 * visible[v[1]] + w2 * visible[v[2]]) /
            255.0f;
        if (vis < threshold) continue;
        for (int ch = 0; ch < 3; ++ch) {
          const float value = w0 * colors[v[0]][ch] + w1 * colors[v[1]][ch] +
                              w2 * colors[v[2]][ch];
          out[c][ch] = cv::saturate_cast<uint8_t>(value);
        }
        hole[c] = 0;
        depth[c] = fragments.depth[index];
      }
    }
  });
  if (options.inpaint && options.inpaint_scale > 1 &&
      cv::countNonZero(view.hole_mask) > 0) {
    view.image = InpaintCoarse(view.raw_image,
                               view.hole_mask,
                               options.inpaint_radius,
                               options.inpaint_scale);
  } else if (options.inpaint && cv::countNonZero(view.hole_mask) > 0) {
    cv::inpaint(view.raw_image,
                view.hole_mask,
                view.image,
                options.inpaint_radius,
                cv::INPAINT_TELEA);
  } else {
    view.image = view.raw_image.clone();
  }
  return view;
}

GtWarp ComputeGtWarp(const cv::Mat& depth_a,
                     const PinholeCamera& camera_a,
                     const cv::Mat& depth_b,
                     const PinholeCamera& camera_b,
                     const Eigen::Matrix4d& b_from_a,
                     double consistency_threshold,
                     int num_threads) {
  CV_Assert(depth_a.type() == CV_32F && depth_b.type() == CV_32F);
  GtWarp gt;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Every pixel is written once below (no pre-fill pass).
  gt.warp.create(depth_a.size(), CV_32FC2);
  gt.valid.create(depth_a.size(), CV_8U);
  const Eigen::Matrix3d R = b_from_a.topLeftCorner<3, 3>();
  const Eigen::Vector3d t = b_from_a.topRightCorner<3, 1>();
  const int wb = depth_b.cols, hb = depth_b.rows;
  // p_b = z * R * ray(r, c) + t; R * ray = column term + row term.
  std::vector<Eigen::Vector3d> column_term(depth_a.cols);
  for (int c = 0; c < depth_a.cols; ++c)
    column_term[c] = R.col(0) * ((c + 0.5 - camera_a.cx) / camera_a.fx);
  // Bilinear with zero padding, like grid_sample(align_corners=False).
  auto sample = [&](double x, double y) {
    const double u = x - 0.5, v = y - 0.5;
    // u, v > -0.5 here, so truncation after +1 is floor.
    const int u0 = static_cast<int>(u + 1) - 1,
              v0 = static_cast<int>(v + 1) - 1;
    const double fu = u - u0, fv = v - v0;
    if (u0 >= 0 && v0 >= 0 && u0 + 1 < wb && v0 + 1 < hb) {
      const float* top = depth_b.ptr<float>(v0) + u0;
      const float* bottom = depth_b.ptr<float>(v0 + 1) + u0;
      return (1 - fv) * ((1 - fu) * top[0] + fu * top[1]) +
             fv * ((1 - fu) * bottom[0] + fu * bottom[1]);
    }
    double value = 0;
    for (int dv = 0; dv < 2; ++dv) {
      for (int du = 0; du < 2; ++du) {
        const int uu = u0 + du, vv = v0 + dv;
        if (uu < 0 || vv < 0 || uu >= wb || vv >= hb) continue;
        value +=
            (du ? fu : 1 - fu) * (dv ? fv : 1 - fv) * depth_b.at<float>(vv, uu);
      }
    }
    return value;
  };
  std::vector<int> counts(depth_a.rows, 0);
  ParallelFor(depth_a.rows, num_threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const Eigen::Vector3d row_term =
          R.col(1) * ((r + 0.5 - camera_a.cy) / camera_a.fy) + R.col(2);
      const float* za = depth_a.ptr<float>(r);
      cv::Vec2f* out = gt.warp.ptr<cv::Vec2f>(r);
      uint8_t* ok = gt.valid.ptr<uint8_t>(r);
      for (int c = 0; c < depth_a.cols; ++c) {
        out[c] = cv::Vec2f(nan, nan);
        ok[c] = 0;
        if (!(za[c] > 0)) continue;
        const Eigen::Vector3d p_b = za[c] * (column_term[c] + row_term) + t;
        if (!(p_b.z() > 0)) continue;
        const double inv_z = 1 / p_b.z();
        const double x = camera_b.fx * p_b.x() * inv_z + camera_b.cx;
        const double y = camera_b.fy * p_b.y() * inv_z + camera_b.cy;
        if (!(x > 0 && x < wb && y > 0 && y < hb)) continue;
        const double z_b = sample(x, y);
        if (!(z_b > 0)) continue;
        if (!(std::abs(p_b.z() - z_b) / z_b < consistency_threshold)) continue;
        out[c] = cv::Vec2f(static_cast<float>(x), static_cast<float>(y));
        ok[c] = 255;
        ++counts[r];
      }
    }
  });
  int64_t total = 0;
  for (int n : counts) total += n;
  gt.covisibility = static_cast<double>(total) / depth_a.total();
  return gt;
}

cv::Mat DrawGtMatches(const cv::Mat& image_a,
                      const cv::Mat& image_b,
                      const GtWarp& warp,
                      int num_matches,
                      uint64_t seed) {
  cv::Mat canvas(std::max(image_a.rows, image_b.rows),
                 image_a.cols + image_b.cols,
                 CV_8UC3,
                 cv::Scalar::all(0));
  image_a.copyTo(canvas(cv::Rect(0, 0, image_a.cols, image_a.rows)));
  image_b.copyTo(canvas(cv::Rect(image_a.cols, 0, image_b.cols, image_b.rows)));
  std::vector<cv::Point> candidates;
  cv::findNonZero(warp.valid, candidates);
  std::mt19937_64 rng(seed);
  std::shuffle(candidates.begin(), candidates.end(), rng);
  std::uniform_int_distribution<int> hue(0, 179);
  for (int k = 0; k < std::min<int>(num_matches, candidates.size()); ++k) {
    const cv::Point p = candidates[k];
    const cv::Vec2f q = warp.warp.at<cv::Vec2f>(p);
    cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue(rng), 255, 255)), bgr;
    cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
    const cv::Scalar color(bgr.at<cv::Vec3b>(0)[0],
                           bgr.at<cv::Vec3b>(0)[1],
                           bgr.at<cv::Vec3b>(0)[2]);
    // COLMAP -> OpenCV pixel coordinates: subtract 0.5 (draw with 4 bits of
    // sub-pixel precision).
    const cv::Point a(cvRound(p.x * 16), cvRound(p.y * 16));
    const cv::Point b(cvRound((q[0] - 0.5 + image_a.cols) * 16),
                      cvRound((q[1] - 0.5) * 16));
    cv::line(canvas, a, b, color, 1, cv::LINE_AA, 4);
    cv::circle(canvas, a, 3 * 16, color, 1, cv::LINE_AA, 4);
    cv::circle(canvas, b, 3 * 16, color, 1, cv::LINE_AA, 4);
  }
  return canvas;
}

}  // namespace l2m
