#include "synth/demo_scene.h"

#include "l2m_core/util/file.h"

#include <Eigen/Geometry>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace l2m {
namespace {

struct Box {
  Eigen::Vector3d min, max;
  Eigen::Vector3d tint;
  double texture_scale;  // Texture cells per metre.
  unsigned texture_seed;
};

// Value noise on an integer lattice, smoothly interpolated: a deterministic
// texture with structure at every octave (what feature detectors need).
double Hash(int x, int y, unsigned seed) {
  uint32_t h = static_cast<uint32_t>(x) * 374761393u +
               static_cast<uint32_t>(y) * 668265263u + seed * 2246822519u;
  h = (h ^ (h >> 13)) * 1274126177u;
  return ((h ^ (h >> 16)) & 0xffffff) / static_cast<double>(0xffffff);
}

double ValueNoise(double u, double v, unsigned seed) {
  const int x0 = static_cast<int>(std::floor(u)),
            y0 = static_cast<int>(std::floor(v));
  const double fx = u - x0, fy = v - y0;
  const double sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy);
  const double a = Hash(x0, y0, seed), b = Hash(x0 + 1, y0, seed);
  const double c = Hash(x0, y0 + 1, seed), d = Hash(x0 + 1, y0 + 1, seed);
  return (a * (1 - sx) + b * sx) * (1 - sy) + (c * (1 - sx) + d * sx) * sy;
}

double Texture(double u, double v, unsigned seed) {
  double value = 0, amplitude = 0.5, frequency = 1;
  for (int octave = 0; octave < 5; ++octave) {
    value += amplitude *
             ValueNoise(u * frequency, v * frequency, seed + 17 * octave);
    amplitude *= 0.5;
    frequency *= 2.1;
  }
  return value;
}

// Slab test; returns the entry distance and the face normal.
bool IntersectBox(const Box& box,
                  const Eigen::Vector3d& origin,
                  const Eigen::Vector3d& dir,
                  double* t_hit,
                  int* axis_hit) {
  double t_near = -std::numeric_limits<double>::infinity(),
         t_far = std::numeric_limits<double>::infinity();
  int axis = -1;
  for (int k = 0; k < 3; ++k) {
    if (std::abs(dir[k]) < 1e-12) {
      if (origin[k] < box.min[k] || origin[k] > box.max[k]) return false;
      continue;
    }
    double t1 = (box.min[k] - origin[k]) / dir[k],
           t2 = (box.max[k] - origin[k]) / dir[k];
    if (t1 > t2) std::swap(t1, t2);
    if (t1 > t_near) {
      t_near = t1;
      axis = k;
    }
    t_far = std::min(t_far, t2);
    if (t_near > t_far) return false;
  }
  if (t_near <= 1e-6 || axis < 0) return false;
  *t_hit = t_near;
  *axis_hit = axis;
  return true;
}

std::vector<Box> MakeBoxes(unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Box> boxes;
  // Ground (y is down in camera convention; the world here uses y down too).
  boxes.push_back(
      {{-6, 1.0, -2}, {6, 1.2, 10}, {0.55, 0.5, 0.45}, 3.0, seed + 1});
  // Back wall.
  boxes.push_back(
      {{-6, -4, 7}, {6, 1.0, 7.3}, {0.6, 0.62, 0.7}, 2.0, seed + 2});
  for (int i = 0; i < 7; ++i) {
    const double sx = 0.5 + 0.7 * u(rng), sy = 0.4 + 1.2 * u(rng),
                 sz = 0.5 + 0.7 * u(rng);
    const double cx = -2.6 + 5.2 * (i + 0.5 * u(rng)) / 7.0,
                 cz = 3.2 + 2.8 * u(rng);
    boxes.push_back(
        {{cx - sx / 2, 1.0 - sy, cz - sz / 2},
         {cx + sx / 2, 1.0, cz + sz / 2},
         {0.4 + 0.6 * u(rng), 0.4 + 0.6 * u(rng), 0.4 + 0.6 * u(rng)},
         4.0 + 6.0 * u(rng),
         seed + 10 + static_cast<unsigned>(i)});
  }
  return boxes;
}

}  // namespace

bool DemoSceneOptions::Check(std::string* error) const {
  if (num_views < 2 || width < 64 || height < 64 || !(focal_length > 0) ||
      !(arc_degrees > 0)) {
    *error =
        "need num_views >= 2, width/height >= 64, focal_length > 0, "
        "arc_degrees > 0";
    return false;
  }
  return true;
}

void WriteDemoScene(const std::string& output_dir,
                    const DemoSceneOptions& options) {
  std::string error;
  if (!options.Check(&error))
    throw std::invalid_argument("demo scene options: " + error);
  namespace fs = std::filesystem;
  fs::create_directories(output_dir + "/images");
  fs::create_directories(output_dir + "/ground_truth");
  const std::vector<Box> boxes = MakeBoxes(options.seed);
  const Eigen::Vector3d light = Eigen::Vector3d(0.4, -1.0, -0.5).normalized();
  const Eigen::Vector3d target(0, 0.2, 4.5);
  std::ostringstream images_txt;
  images_txt << "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME "
                "(cam_from_world), then an empty line\n";
  for (int v = 0; v < options.num_views; ++v) {
    // Cameras on an arc around the target, raised a little, looking at it.
    const double a = (v / (options.num_views - 1.0) - 0.5) *
                     options.arc_degrees * M_PI / 180.0;
    const Eigen::Vector3d center =
        target + Eigen::Vector3d(5.0 * std::sin(a), -1.2, -5.0 * std::cos(a));
    const Eigen::Vector3d z = (target - center).normalized();
    const Eigen::Vector3d x = Eigen::Vector3d(0, 1, 0).cross(z).normalized();
    const Eigen::Vector3d y = z.cross(x);
    Eigen::Matrix3d world_from_cam;
    world_from_cam << x, y, z;
    cv::Mat image(options.height, options.width, CV_8UC3);
    for (int r = 0; r < options.height; ++r) {
      for (int c = 0; c < options.width; ++c) {
        // COLMAP pixel centres: (c + 0.5, r + 0.5).
        const Eigen::Vector3d ray_cam(
            (c + 0.5 - options.width / 2.0) / options.focal_length,
            (r + 0.5 - options.height / 2.0) / options.focal_length,
            1.0);
        const Eigen::Vector3d dir = (world_from_cam * ray_cam).normalized();
        double best_t = std::numeric_limits<double>::infinity();
        int best_box = -1, best_axis = 0;
        for (size_t b = 0; b < boxes.size(); ++b) {
          double t;
          int axis;
          if (IntersectBox(boxes[b], center, dir, &t, &axis) && t < best_t) {
            best_t = t;
            best_box = static_cast<int>(b);
            best_axis = axis;
          }
        }
        Eigen::Vector3d colour(0.75, 0.8, 0.9);  // Sky.
        if (best_box >= 0) {
          const Box& box = boxes[best_box];
          const Eigen::Vector3d p = center + best_t * dir;
          const int ua = (best_axis + 1) % 3, va = (best_axis + 2) % 3;
          const double tex = Texture(p[ua] * box.texture_scale,
                                     p[va] * box.texture_scale,
                                     box.texture_seed + 101 * best_axis);
          Eigen::Vector3d normal = Eigen::Vector3d::Zero();
          normal[best_axis] = dir[best_axis] > 0 ? -1 : 1;
          const double shade = 0.55 + 0.45 * std::max(0.0, -normal.dot(light));
          colour = box.tint * (0.3 + 1.0 * tex) * shade;
        }
        cv::Vec3b& px = image.at<cv::Vec3b>(r, c);
        for (int k = 0; k < 3; ++k)
          px[2 - k] = cv::saturate_cast<uchar>(255.0 * colour[k]);
      }
    }
    char name[32];
    std::snprintf(name, sizeof(name), "view_%02d.png", v);
    if (!cv::imwrite(output_dir + "/images/" + name, image)) {
      throw std::runtime_error("Cannot write '" + output_dir + "/images/" +
                               name + "'");
    }
    const Eigen::Matrix3d cam_from_world = world_from_cam.transpose();
    const Eigen::Quaterniond q(cam_from_world);
    const Eigen::Vector3d t = -cam_from_world * center;
    images_txt << v + 1 << " " << q.w() << " " << q.x() << " " << q.y() << " "
               << q.z() << " " << t.x() << " " << t.y() << " " << t.z() << " 1 "
               << name << "\n\n";
  }
  std::ostringstream cameras_txt;
  cameras_txt << "# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n1 PINHOLE "
              << options.width << " " << options.height << " "
              << options.focal_length << " " << options.focal_length << " "
              << options.width / 2.0 << " " << options.height / 2.0 << "\n";
  WriteFileAtomic(output_dir + "/ground_truth/cameras.txt", cameras_txt.str());
  WriteFileAtomic(output_dir + "/ground_truth/images.txt", images_txt.str());
  WriteFileAtomic(output_dir + "/ground_truth/points3D.txt", "# no points\n");
}

}  // namespace l2m
