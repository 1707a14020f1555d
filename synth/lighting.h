#pragma once

// Random point lights of the relighting (stage 2.2), free of OpenCV: sampled
// as the reference's relight.py, shared by relight.h (cv::Mat images) and the
// on-the-fly training pairs (train_pairs.h).

#include <Eigen/Core>

#include <random>
#include <string>
#include <vector>

namespace l2m {

struct PointLight {
  Eigen::Vector3d position;  // In the frame of the camera being shaded.
  Eigen::Vector3d color;     // Per channel (R, G, B) in (0, 1].
  double energy = 0;         // Watts, as the reference's Blender lights.
};

struct Lighting {
  std::vector<PointLight> lights;
  double ambient = 1;
};

struct RelightOptions {
  // randint(2, 6) -> 2..5 lights; energy 400 + 1600 U.
  int min_lights = 2;
  int max_lights = 5;
  double min_energy = 400;
  double max_energy = 2000;
  // Per channel colour: U[0.5, 1) or 0.5 (coin flip), as the reference.
  // Ambient (scales the albedo); stands in for Blender's world light.
  double min_ambient = 0.45;
  double max_ambient = 0.85;
  // Irradiance = exposure * energy / (4 pi r^2) * max(0, n.l): maps Blender
  // watts to a factor on the albedo (1000 W at 1 unit -> 0.8).
  double exposure = 0.01;
  // Blinn-Phong strength (0 = off) and exponent.
  double specular = 0;
  double shininess = 32;
  bool shadows = false;
  int shadow_map_size = 512;
  // A point is in shadow if it is this much (relative) farther from the
  // light than the shadow map's surface.
  double shadow_bias = 0.02;
  // Gaussian sigma (pixels) on the disparity before normals (relight.py: 2).
  double normal_smoothing = 2;
  int num_threads = 0;

  bool Check(std::string* error) const;
};

// Lights positioned as relight.py (Blender axes X right, Y forward, Z up:
// x in U[0,3) or -U[0,2), y in {1, 2}, z in U[0,2) or -U[0,2)), converted
// to the camera frame (x right, y down, z forward).
Lighting SampleLighting(const RelightOptions& options, std::mt19937_64* rng);

// The same lights seen from camera 2 (positions mapped by cam2_from_cam1).
Lighting TransformLighting(const Lighting& lighting,
                           const Eigen::Matrix4d& cam2_from_cam1);

// Diffuse irradiance factor per channel (R, G, B) at surface point `p` with
// unit normal `n` (both in the lights' frame), on top of the ambient term:
// sum over lights of exposure * E / (4 pi r^2) * max(0, n.l) * colour. No
// shadows, no specular (Relight adds those).
Eigen::Vector3d DiffuseIrradiance(const Eigen::Vector3d& p,
                                  const Eigen::Vector3d& n,
                                  const Lighting& lighting,
                                  double exposure);

}  // namespace l2m
