#pragma once

// COLMAP sparse models as text (images.txt) and comparison of recovered
// camera poses with ground truth.

#include <Eigen/Core>
#include <Eigen/Geometry>

#include <map>
#include <string>

namespace l2m {

struct ModelImage {
  std::string name;
  Eigen::Quaterniond cam_from_world_rotation;
  Eigen::Vector3d cam_from_world_translation;
  Eigen::Vector3d Center() const {
    return -(cam_from_world_rotation.inverse() * cam_from_world_translation);
  }
};

// Reads the image poses of a COLMAP text model (`images.txt` in `model_dir`),
// keyed by image name. Throws std::runtime_error naming the file on bad input.
std::map<std::string, ModelImage> ReadModelImagesText(
    const std::string& model_dir);

struct PoseComparison {
  int num_compared = 0;  // Images in both models.
  int num_gt_images = 0;
  double rotation_error_deg_median = 0;
  double rotation_error_deg_max = 0;
  // Camera centre errors after a similarity alignment, in GT units and
  // relative to the GT scene extent (median camera distance to centroid).
  double position_error_median = 0;
  double position_error_max = 0;
  double relative_position_error_median = 0;
};

// Aligns `estimated` to `gt` with the similarity (Umeyama) of the camera
// centres, then compares orientations and positions. Needs >= 3 common images.
PoseComparison ComparePoses(const std::map<std::string, ModelImage>& estimated,
                            const std::map<std::string, ModelImage>& gt);

}  // namespace l2m
