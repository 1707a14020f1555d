#include "synth/relight.h"

#include "synth/novel_view.h"
#include "synth/rasterizer.h"

#include <Eigen/Geometry>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace l2m {

namespace {

// Gaussian blur of `values` over the pixels where `valid` (normalised
// convolution), so unknown pixels neither leak in nor stay empty.
cv::Mat MaskedBlur(const cv::Mat& values, const cv::Mat& valid, double sigma) {
  cv::Mat weight, num, den;
  valid.convertTo(weight, CV_32F, 1.0 / 255);
  std::vector<cv::Mat> channels;
  cv::split(values, channels);
  cv::GaussianBlur(weight, den, cv::Size(), sigma);
  for (auto& ch : channels) {
    cv::GaussianBlur(ch.mul(weight), num, cv::Size(), sigma);
    ch = num / cv::max(den, 1e-6);
  }
  cv::Mat out;
  cv::merge(channels, out);
  return out;
}

}  // namespace

cv::Mat ComputeNormals(const cv::Mat& depth,
                       const PinholeCamera& camera,
                       double sigma) {
  const cv::Mat valid = depth > 0;
  cv::Mat disparity(depth.size(), CV_32F, cv::Scalar(0));
  for (int r = 0; r < depth.rows; ++r)
    for (int c = 0; c < depth.cols; ++c)
      if (depth.at<float>(r, c) > 0)
        disparity.at<float>(r, c) = 1 / depth.at<float>(r, c);
  if (sigma > 0) disparity = MaskedBlur(disparity, valid, sigma);
  cv::Mat smooth(depth.size(), CV_32F, cv::Scalar(0));
  for (int r = 0; r < depth.rows; ++r)
    for (int c = 0; c < depth.cols; ++c)
      if (valid.at<uint8_t>(r, c) && disparity.at<float>(r, c) > 0)
        smooth.at<float>(r, c) = 1 / disparity.at<float>(r, c);
  const std::vector<Eigen::Vector3f> points = UnprojectDepth(smooth, camera);
  cv::Mat normals(depth.size(), CV_32FC3, cv::Scalar::all(0));
  const int w = depth.cols, h = depth.rows;
  auto at = [&](int r, int c) {
    return points[static_cast<size_t>(r) * w + c];
  };
  auto ok = [&](int r, int c) { return smooth.at<float>(r, c) > 0; };
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      if (!ok(r, c)) continue;
      // Central differences where both neighbours exist, else one-sided.
      const int cl = (c > 0 && ok(r, c - 1)) ? c - 1 : c;
      const int cr = (c + 1 < w && ok(r, c + 1)) ? c + 1 : c;
      const int ru = (r > 0 && ok(r - 1, c)) ? r - 1 : r;
      const int rd = (r + 1 < h && ok(r + 1, c)) ? r + 1 : r;
      if (cl == cr || ru == rd) continue;
      const Eigen::Vector3f dx = at(r, cr) - at(r, cl);
      const Eigen::Vector3f dy = at(rd, c) - at(ru, c);
      Eigen::Vector3f n = dx.cross(dy);
      if (n.norm() < 1e-12f) continue;
      n.normalize();
      if (n.dot(at(r, c)) > 0) n = -n;
      normals.at<cv::Vec3f>(r, c) = cv::Vec3f(n.x(), n.y(), n.z());
    }
  }
  return normals;
}

namespace {

// Light-space depth map of the lifted mesh for a point light: a pinhole
// camera at the light looking at the scene's centroid, wide enough for all
// points in front of it (capped at 150 degrees).
struct ShadowMap {
  Eigen::Matrix4d light_from_cam = Eigen::Matrix4d::Identity();
  PinholeCamera camera;
  Fragments fragments;
};

ShadowMap RenderShadowMap(const std::vector<Eigen::Vector3f>& points,
                          const cv::Mat& depth,
                          const Eigen::Vector3d& light,
                          const RelightOptions& options) {
  ShadowMap map;
  Eigen::Vector3d centroid = Eigen::Vector3d::Zero();
  int n = 0;
  for (size_t k = 0; k < points.size(); ++k)
    if (points[k].z() > 0) {
      centroid += points[k].cast<double>();
      ++n;
    }
  centroid /= std::max(1, n);
  Eigen::Vector3d z = (centroid - light).normalized();
  Eigen::Vector3d x = Eigen::Vector3d::UnitY().cross(z);
  if (x.norm() < 1e-6) x = Eigen::Vector3d::UnitX().cross(z);
  x.normalize();
  const Eigen::Vector3d y = z.cross(x);
  Eigen::Matrix3d R;
  R.row(0) = x;
  R.row(1) = y;
  R.row(2) = z;
  map.light_from_cam.topLeftCorner<3, 3>() = R;
  map.light_from_cam.topRightCorner<3, 1>() = -R * light;
  std::vector<Eigen::Vector3f> in_light(points.size());
  double max_tan = 0;
  const Eigen::Matrix3f Rf = R.cast<float>();
  const Eigen::Vector3f tf = (-R * light).cast<float>();
  const double cap = std::tan(75 * M_PI / 180);
  for (size_t k = 0; k < points.size(); ++k) {
    in_light[k] = Rf * points[k] + tf;
    if (points[k].z() > 0 && in_light[k].z() > 1e-3) {
      max_tan = std::max<double>(
          max_tan,
          std::max(std::abs(in_light[k].x()), std::abs(in_light[k].y())) /
              in_light[k].z());
    }
  }
  max_tan = std::min(std::max(max_tan, 0.1), cap);
  const int s = options.shadow_map_size;
  map.camera.width = map.camera.height = s;
  map.camera.fx = map.camera.fy = s / 2.0 / max_tan;
  map.camera.cx = map.camera.cy = s / 2.0;
  std::vector<uint8_t> valid(points.size());
  for (size_t k = 0; k < points.size(); ++k) valid[k] = points[k].z() > 0;
  RasterOptions raster;
  raster.num_threads = options.num_threads;
  raster.near_plane = 1e-3;
  RasterizeGridMesh(in_light,
                    depth.rows,
                    depth.cols,
                    valid.data(),
                    map.camera,
                    raster,
                    &map.fragments);
  return map;
}

}  // namespace

cv::Mat Relight(const cv::Mat& image,
                const cv::Mat& depth,
                const PinholeCamera& camera,
                const Lighting& lighting,
                const RelightOptions& options) {
  CV_Assert(image.type() == CV_8UC3 && depth.type() == CV_32F &&
            image.size() == depth.size());
  const int w = image.cols, h = image.rows;
  const cv::Mat normals =
      ComputeNormals(depth, camera, options.normal_smoothing);
  const std::vector<Eigen::Vector3f> points = UnprojectDepth(depth, camera);
  std::vector<ShadowMap> shadow_maps;
  if (options.shadows)
    for (const auto& light : lighting.lights)
      shadow_maps.push_back(
          RenderShadowMap(points, depth, light.position, options));

  // Diffuse factor (per channel, on top of ambient) and specular (added).
  cv::Mat diffuse(h, w, CV_32FC3, cv::Scalar::all(0));
  cv::Mat specular(h, w, CV_32FC3, cv::Scalar::all(0));
  cv::Mat shaded = cv::Mat::zeros(h, w, CV_8U);
  ParallelFor(h, options.num_threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      for (int c = 0; c < w; ++c) {
        const cv::Vec3f nv = normals.at<cv::Vec3f>(r, c);
        if (nv == cv::Vec3f()) continue;
        shaded.at<uint8_t>(r, c) = 255;
        const Eigen::Vector3d n(nv[0], nv[1], nv[2]);
        const Eigen::Vector3d p =
            points[static_cast<size_t>(r) * w + c].cast<double>();
        const Eigen::Vector3d view_dir = -p.normalized();
        Eigen::Vector3d d = Eigen::Vector3d::Zero(),
                        s = Eigen::Vector3d::Zero();
        for (size_t k = 0; k < lighting.lights.size(); ++k) {
          const PointLight& light = lighting.lights[k];
          const Eigen::Vector3d to_light = light.position - p;
          const double r2 = std::max(1e-4, to_light.squaredNorm());
          const Eigen::Vector3d l = to_light / std::sqrt(r2);
          const double cos_theta = n.dot(l);
          if (cos_theta <= 0) continue;
          if (options.shadows) {
            const ShadowMap& map = shadow_maps[k];
            const Eigen::Vector3d q =
                map.light_from_cam.topLeftCorner<3, 3>() * p +
                map.light_from_cam.topRightCorner<3, 1>();
            if (q.z() > 1e-3) {
              const int u = static_cast<int>(map.camera.fx * q.x() / q.z() +
                                             map.camera.cx);
              const int v = static_cast<int>(map.camera.fy * q.y() / q.z() +
                                             map.camera.cy);
              if (u >= 0 && v >= 0 && u < map.camera.width &&
                  v < map.camera.height) {
                const float z_map =
                    map.fragments.depth[v * map.camera.width + u];
                if (z_map > 0 && q.z() > z_map * (1 + options.shadow_bias))
                  continue;
              }
            }
          }
          const double irradiance =
              options.exposure * light.energy / (4 * M_PI * r2) * cos_theta;
          d += irradiance * light.color;
          if (options.specular > 0) {
            const Eigen::Vector3d half = (l + view_dir).normalized();
            s += options.specular * options.exposure * light.energy /
                 (4 * M_PI * r2) *
                 std::pow(std::max(0.0, n.dot(half)), options.shininess) *
                 light.color;
          }
        }
        // Image channels are BGR; light colours RGB.
        diffuse.at<cv::Vec3f>(r, c) = cv::Vec3f(d[2], d[1], d[0]);
        specular.at<cv::Vec3f>(r, c) = cv::Vec3f(s[2], s[1], s[0]);
      }
    }
  });
  // Unknown depth (holes, sky): shading of the valid neighbourhood.
  if (cv::countNonZero(shaded) < w * h && cv::countNonZero(shaded) > 0) {
    const cv::Mat fill_d = MaskedBlur(diffuse, shaded, 8);
    const cv::Mat fill_s = MaskedBlur(specular, shaded, 8);
    fill_d.copyTo(diffuse, ~shaded);
    fill_s.copyTo(specular, ~shaded);
  }
  cv::Mat out(h, w, CV_8UC3);
  const float ambient = static_cast<float>(lighting.ambient);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const cv::Vec3b a = image.at<cv::Vec3b>(r, c);
      const cv::Vec3f d = diffuse.at<cv::Vec3f>(r, c),
                      s = specular.at<cv::Vec3f>(r, c);
      cv::Vec3b& o = out.at<cv::Vec3b>(r, c);
      for (int ch = 0; ch < 3; ++ch)
        o[ch] = cv::saturate_cast<uint8_t>(a[ch] * (ambient + d[ch]) +
                                           255.0f * s[ch]);
    }
  return out;
}

}  // namespace l2m
