#include "colmap_plugin/model_io.h"

#include "l2m_core/util/string.h"

#include <Eigen/Geometry>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace l2m {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::map<std::string, ModelImage> ReadModelImagesText(
    const std::string& model_dir) {
  const std::string path = model_dir + "/images.txt";
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("Cannot open COLMAP text model '" + path + "'");
  std::map<std::string, ModelImage> images;
  std::string line;
  int line_no = 0;
  bool expect_points = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line[0] == '#') continue;
    if (expect_points) {  // Every image line is followed by its POINTS2D line.
      expect_points = false;
      continue;
    }
    const auto f = SplitString(line);
    if (f.empty()) continue;
    if (f.size() < 10) {
      throw std::runtime_error(
          "'" + path + "', line " + std::to_string(line_no) +
          ": expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME");
    }
    ModelImage im;
    try {
      im.cam_from_world_rotation = Eigen::Quaterniond(
          std::stod(f[1]), std::stod(f[2]), std::stod(f[3]), std::stod(f[4]));
      im.cam_from_world_translation =
          Eigen::Vector3d(std::stod(f[5]), std::stod(f[6]), std::stod(f[7]));
    } catch (const std::exception&) {
      throw std::runtime_error("'" + path + "', line " +
                               std::to_string(line_no) + ": not a number");
    }
    im.cam_from_world_rotation.normalize();
    im.name = f[9];
    images[im.name] = im;
    expect_points = true;
  }
  return images;
}

PoseComparison ComparePoses(const std::map<std::string, ModelImage>& estimated,
                            const std::map<std::string, ModelImage>& gt) {
  PoseComparison result;
  result.num_gt_images = static_cast<int>(gt.size());
  std::vector<std::string> names;
  for (const auto& [name, im] : estimated) {
    if (gt.count(name)) names.push_back(name);
  }
  result.num_compared = static_cast<int>(names.size());
  if (names.size() < 3) return result;
  Eigen::Matrix3Xd src(3, names.size()), dst(3, names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    src.col(i) = estimated.at(names[i]).Center();
    dst.col(i) = gt.at(names[i]).Center();
  }
  // gt_from_est similarity.
  const Eigen::Matrix4d T = Eigen::umeyama(src, dst, true);
  const Eigen::Matrix3d sR = T.topLeftCorner<3, 3>();
  const double scale = std::cbrt(sR.determinant());
  const Eigen::Matrix3d R = sR / scale;
  const Eigen::Vector3d centroid = dst.rowwise().mean();
  std::vector<double> extent, rot_err, pos_err;
  for (size_t i = 0; i < names.size(); ++i)
    extent.push_back((dst.col(i) - centroid).norm());
  const double scene_extent = std::max(Median(extent), 1e-12);
  for (size_t i = 0; i < names.size(); ++i) {
    // The estimated cam_from_world in GT world: R_est * R^T.
    const Eigen::Matrix3d r_est =
        estimated.at(names[i]).cam_from_world_rotation.toRotationMatrix() *
        R.transpose();
    const Eigen::Matrix3d r_gt =
        gt.at(names[i]).cam_from_world_rotation.toRotationMatrix();
    const Eigen::AngleAxisd diff(r_gt * r_est.transpose());
    rot_err.push_back(std::abs(diff.angle()) * 180.0 / M_PI);
    const Eigen::Vector3d aligned = sR * src.col(i) + T.topRightCorner<3, 1>();
    pos_err.push_back((aligned - dst.col(i)).norm());
  }
  result.rotation_error_deg_median = Median(rot_err);
  result.rotation_error_deg_max =
      *std::max_element(rot_err.begin(), rot_err.end());
  result.position_error_median = Median(pos_err);
  result.position_error_max = *std::max_element(pos_err.begin(), pos_err.end());
  result.relative_position_error_median =
      result.position_error_median / scene_extent;
  return result;
}

}  // namespace l2m
