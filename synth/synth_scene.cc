#include "synth/synth_scene.h"

#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "synth/npy.h"

#include <Eigen/Geometry>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/photo.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace {

std::string ViewName(int k) {
  char name[32];
  std::snprintf(name, sizeof(name), "view_%02d", k);
  return name;
}

void WritePngAtomic(const std::string& path, const cv::Mat& image) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", image, bytes))
    throw std::runtime_error("Cannot encode '" + path + "'");
  WriteFileAtomic(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace

bool SceneOptions::Check(std::string* error) const {
  if (num_views < 2 || width < 32 || height < 32) {
    *error = "Scene needs num_views >= 2 and width, height >= 32";
    return false;
  }
  if (!(focal_fraction > 0) || !(radius > 0) || !(max_depth_ratio > 1)) {
    *error =
        "Scene.focal_fraction and Scene.radius must be > 0, "
        "Scene.max_depth_ratio > 1";
    return false;
  }
  if (!(arc_degrees >= 0 && arc_degrees < 180) ||
      !(std::abs(elevation_degrees) < 60) ||
      !(jitter_degrees >= 0 && jitter_degrees < 20)) {
    *error =
        "Scene.arc_degrees must be in [0, 180), |Scene.elevation_degrees| < "
        "60, Scene.jitter_degrees in [0, 20)";
    return false;
  }
  return lifting.Check(error) && view.Check(error);
}

cv::Mat ResizeAndCenterCropTo(const cv::Mat& image,
                              int width,
                              int height,
                              bool nearest) {
  const double scale = std::max(static_cast<double>(width) / image.cols,
                                static_cast<double>(height) / image.rows);
  const int w =
      std::max(width, static_cast<int>(std::lround(image.cols * scale)));
  const int h =
      std::max(height, static_cast<int>(std::lround(image.rows * scale)));
  cv::Mat resized = image;
  if (w != image.cols || h != image.rows) {
    const int interp = nearest
                           ? cv::INTER_NEAREST
                           : (scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::resize(image, resized, cv::Size(w, h), 0, 0, interp);
  }
  return resized(cv::Rect((w - width) / 2, (h - height) / 2, width, height))
      .clone();
}

LiftedImage LiftScenePhoto(const std::string& image_path,
                           const std::string& disparity_path,
                           const SceneOptions& options) {
  const cv::Mat full = ReadColorImage(image_path);
  const int width = options.width, height = options.height;
  cv::Mat depth(height, width, CV_32F);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (disparity_path.empty()) {
    const cv::Mat disp = ProceduralDisparity(width, height, options.seed);
    for (int k = 0; k < static_cast<int>(depth.total()); ++k)
      depth.at<float>(k) = 1.0f / disp.at<float>(k);
  } else {
    const cv::Mat raw = ReadDepthInput(disparity_path, options.lifting);
    if (raw.size() != full.size())
      throw std::runtime_error(
          "Disparity '" + disparity_path + "' is " + std::to_string(raw.cols) +
          "x" + std::to_string(raw.rows) + " but image '" + image_path +
          "' is " + std::to_string(full.cols) + "x" +
          std::to_string(full.rows));
    const cv::Mat crop = ResizeAndCenterCropTo(raw, width, height, true);
    const bool is_depth = options.lifting.input_kind == DepthInputKind::kDepth;
    for (int k = 0; k < static_cast<int>(depth.total()); ++k) {
      const float v = crop.at<float>(k);
      const float d = v + static_cast<float>(options.disparity_offset);
      depth.at<float>(k) =
          is_depth ? (v > 0 ? v : nan) : (d > 0 ? 1.0f / d : nan);
    }
  }
  if (options.fill_unknown_depth && !disparity_path.empty()) {
    // Stereo disparities have unknown pixels (occlusions) and speckle; both
    // would become scattered holes in every view. Inpaint the inverse depth
    // and take a 5x5 median: a scene needs a plausible closed surface, not a
    // faithful copy of the measurement's gaps.
    cv::Mat inverse(height, width, CV_32F), unknown(height, width, CV_8U);
    for (int k = 0; k < static_cast<int>(depth.total()); ++k) {
      const float z = depth.at<float>(k);
      const bool known = std::isfinite(z) && z > 0;
      inverse.at<float>(k) = known ? 1.0f / z : 0.0f;
      unknown.at<uint8_t>(k) = known ? 0 : 255;
    }
    if (cv::countNonZero(unknown) < static_cast<int>(depth.total()) * 9 / 10) {
      cv::Mat filled;
      cv::inpaint(inverse, unknown, filled, 5, cv::INPAINT_TELEA);
      cv::medianBlur(filled, filled, 5);
      for (int k = 0; k < static_cast<int>(depth.total()); ++k) {
        const float d = filled.at<float>(k);
        depth.at<float>(k) = d > 0 ? 1.0f / d : nan;
      }
    }
  }
  // Clamp the far end, then scale the median depth to 1.
  std::vector<float> valid;
  valid.reserve(depth.total());
  for (auto it = depth.begin<float>(); it != depth.end<float>(); ++it)
    if (std::isfinite(*it) && *it > 0) valid.push_back(*it);
  if (valid.size() < depth.total() / 10)
    throw std::runtime_error(
        "Disparity '" + disparity_path +
        "' has almost no valid value in the crop (< 10 % of the pixels)");
  const float nearest = *std::min_element(valid.begin(), valid.end());
  const float far_limit = nearest * static_cast<float>(options.max_depth_ratio);
  for (float& z : valid) z = std::min(z, far_limit);
  std::nth_element(
      valid.begin(), valid.begin() + valid.size() / 2, valid.end());
  const float median = valid[valid.size() / 2];
  for (auto it = depth.begin<float>(); it != depth.end<float>(); ++it)
    *it = (std::isfinite(*it) && *it > 0) ? std::min(*it, far_limit) / median
                                          : 0.0f;
  // The discontinuity test runs on the min-max normalised inverse depth, as
  // for `synth views`.
  cv::Mat disparity(height, width, CV_32F);
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (int k = 0; k < static_cast<int>(depth.total()); ++k) {
    const float z = depth.at<float>(k);
    disparity.at<float>(k) = z > 0 ? 1.0f / z : nan;
    if (z > 0) {
      lo = std::min(lo, 1.0 / z);
      hi = std::max(hi, 1.0 / z);
    }
  }
  const double range = hi > lo ? hi - lo : 1.0;
  for (auto it = disparity.begin<float>(); it != disparity.end<float>(); ++it)
    if (std::isfinite(*it))
      *it = static_cast<float>((*it - lo) / range +
                               options.lifting.disparity_offset);

  LiftedImage lifted;
  lifted.image = ResizeAndCenterCropTo(full, width, height, false);
  lifted.depth = depth;
  lifted.vertex_visible = VisibleVertexMask(disparity, options.lifting);
  lifted.camera =
      PinholeCamera::FromFocalFraction(width, height, options.focal_fraction);
  return lifted;
}

std::vector<Eigen::Matrix4d> OrbitPoses(const SceneOptions& options) {
  const double deg = M_PI / 180;
  const Eigen::Vector3d target(0, 0, 1);
  std::vector<Eigen::Matrix4d> poses;
  for (int k = 0; k < options.num_views; ++k) {
    const double s = k / (options.num_views - 1.0);  // 0 .. 1 along the arc.
    const double yaw = (s - 0.5) * options.arc_degrees * deg;
    const double elevation =
        options.elevation_degrees * std::sin(M_PI * s) * deg;
    // y points down (camera convention), so a raised camera has y < 0.
    const Eigen::Vector3d center =
        target +
        options.radius * Eigen::Vector3d(std::sin(yaw) * std::cos(elevation),
                                         -std::sin(elevation),
                                         -std::cos(yaw) * std::cos(elevation));
    const Eigen::Vector3d z = (target - center).normalized();
    const Eigen::Vector3d x = Eigen::Vector3d(0, 1, 0).cross(z).normalized();
    const Eigen::Vector3d y = z.cross(x);
    Eigen::Matrix3d world_from_cam;
    world_from_cam << x, y, z;
    // Seeded per view, so a view does not change with num_views' other views.
    std::mt19937_64 rng(SeedFor(options.seed, "scene_orbit", k));
    std::uniform_real_distribution<double> jitter(-options.jitter_degrees,
                                                  options.jitter_degrees);
    const double jx = jitter(rng) * deg, jy = jitter(rng) * deg,
                 jz = jitter(rng) * deg;
    world_from_cam =
        world_from_cam * (Eigen::AngleAxisd(jz, Eigen::Vector3d::UnitZ()) *
                          Eigen::AngleAxisd(jy, Eigen::Vector3d::UnitY()) *
                          Eigen::AngleAxisd(jx, Eigen::Vector3d::UnitX()))
                             .toRotationMatrix();
    Eigen::Matrix4d cam_from_world = Eigen::Matrix4d::Identity();
    cam_from_world.topLeftCorner<3, 3>() = world_from_cam.transpose();
    cam_from_world.topRightCorner<3, 1>() =
        -world_from_cam.transpose() * center;
    poses.push_back(cam_from_world);
  }
  return poses;
}

SceneSummary WriteScene(const std::string& image_path,
                        const std::string& disparity_path,
                        const std::string& output_dir,
                        const SceneOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  const LiftedImage lifted =
      LiftScenePhoto(image_path, disparity_path, options);
  namespace fs = std::filesystem;
  for (const char* sub : {"images", "depth", "holes", "ground_truth"})
    fs::create_directories(output_dir + "/" + sub);
  const std::vector<Eigen::Matrix4d> poses = OrbitPoses(options);
  SceneSummary summary;
  summary.num_views = options.num_views;
  summary.camera = lifted.camera;
  std::ostringstream images_txt;
  images_txt << std::setprecision(17)
             << "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME "
                "(cam_from_world), then an empty line (no 2-D points)\n";
  nlohmann::json views = nlohmann::json::array();
  Progress progress("synth scene", options.num_views);
  for (int k = 0; k < options.num_views; ++k) {
    const NovelView view =
        RenderNovelView(lifted, lifted.camera, poses[k], options.view);
    const std::string name = ViewName(k);
    WritePngAtomic(output_dir + "/images/" + name + ".png", view.image);
    WritePngAtomic(output_dir + "/holes/" + name + ".png", view.hole_mask);
    WriteNpy(output_dir + "/depth/" + name + ".npy", view.depth);
    const double holes = cv::countNonZero(view.hole_mask) /
                         static_cast<double>(view.depth.total());
    summary.mean_hole_fraction += holes / options.num_views;
    summary.max_hole_fraction = std::max(summary.max_hole_fraction, holes);
    const Eigen::Matrix3d R = poses[k].topLeftCorner<3, 3>();
    const Eigen::Quaterniond q(R);
    const Eigen::Vector3d t = poses[k].topRightCorner<3, 1>();
    images_txt << k + 1 << " " << q.w() << " " << q.x() << " " << q.y() << " "
               << q.z() << " " << t.x() << " " << t.y() << " " << t.z() << " 1 "
               << name << ".png\n\n";
    views.push_back({{"name", name + ".png"}, {"hole_fraction", holes}});
    progress.Add();
  }
  progress.Finish();
  const PinholeCamera& c = lifted.camera;
  std::ostringstream cameras_txt;
  cameras_txt << std::setprecision(17)
              << "# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[] (COLMAP pixels)\n"
              << "1 PINHOLE " << c.width << " " << c.height << " " << c.fx
              << " " << c.fy << " " << c.cx << " " << c.cy << "\n";
  WriteFileAtomic(output_dir + "/ground_truth/cameras.txt", cameras_txt.str());
  WriteFileAtomic(output_dir + "/ground_truth/images.txt", images_txt.str());
  WriteFileAtomic(output_dir + "/ground_truth/points3D.txt", "# no points\n");
  const nlohmann::json meta = {
      {"source_image", image_path},
      {"disparity", disparity_path.empty() ? "procedural" : disparity_path},
      {"seed", options.seed},
      {"camera", {c.width, c.height, c.fx, c.fy, c.cx, c.cy}},
      {"world", "source photo camera frame, median depth scaled to 1"},
      {"arc_degrees", options.arc_degrees},
      {"elevation_degrees", options.elevation_degrees},
      {"radius", options.radius},
      {"mean_hole_fraction", summary.mean_hole_fraction},
      {"views", views}};
  WriteFileAtomic(output_dir + "/scene.json", meta.dump(2) + "\n");
  return summary;
}

}  // namespace l2m
