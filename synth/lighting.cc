#include "synth/lighting.h"

#include <Eigen/Geometry>

#include <algorithm>
#include <cmath>

namespace l2m {

bool RelightOptions::Check(std::string* error) const {
  if (min_lights < 0 || max_lights < min_lights) {
    *error = "Relight needs 0 <= min_lights <= max_lights";
    return false;
  }
  if (min_energy < 0 || max_energy < min_energy) {
    *error = "Relight needs 0 <= min_energy <= max_energy";
    return false;
  }
  if (min_ambient < 0 || max_ambient < min_ambient) {
    *error = "Relight needs 0 <= min_ambient <= max_ambient";
    return false;
  }
  if (exposure < 0 || specular < 0 || shininess <= 0 || shadow_bias < 0 ||
      normal_smoothing < 0) {
    *error =
        "Relight exposure/specular/shadow_bias/normal_smoothing must be "
        ">= 0 and shininess > 0";
    return false;
  }
  if (shadows && shadow_map_size < 16) {
    *error = "Relight.shadow_map_size must be >= 16";
    return false;
  }
  return true;
}

Lighting SampleLighting(const RelightOptions& options, std::mt19937_64* rng) {
  std::uniform_real_distribution<double> u(0, 1);
  Lighting lighting;
  lighting.ambient = options.min_ambient +
                     (options.max_ambient - options.min_ambient) * u(*rng);
  const int count = std::uniform_int_distribution<int>(
      options.min_lights, options.max_lights)(*rng);
  for (int k = 0; k < count; ++k) {
    PointLight light;
    light.energy = options.min_energy +
                   (options.max_energy - options.min_energy) * u(*rng);
    for (int ch = 0; ch < 3; ++ch)
      light.color[ch] = u(*rng) < 0.5 ? 0.5 + 0.5 * u(*rng) : 0.5;
    const double bx = u(*rng) < 0.5 ? 3 * u(*rng) : -2 * u(*rng);
    const double by = u(*rng) < 0.5 ? 1 : 2;
    const double bz = u(*rng) < 0.5 ? 2 * u(*rng) : -2 * u(*rng);
    light.position = Eigen::Vector3d(bx, -bz, by);  // Blender -> camera axes.
    lighting.lights.push_back(light);
  }
  return lighting;
}

Lighting TransformLighting(const Lighting& lighting, const Eigen::Matrix4d& T) {
  Lighting out = lighting;
  for (auto& light : out.lights)
    light.position =
        T.topLeftCorner<3, 3>() * light.position + T.topRightCorner<3, 1>();
  return out;
}

Eigen::Vector3d DiffuseIrradiance(const Eigen::Vector3d& p,
                                  const Eigen::Vector3d& n,
                                  const Lighting& lighting,
                                  double exposure) {
  Eigen::Vector3d d = Eigen::Vector3d::Zero();
  for (const PointLight& light : lighting.lights) {
    const Eigen::Vector3d to_light = light.position - p;
    const double r2 = std::max(1e-4, to_light.squaredNorm());
    const double cos_theta = n.dot(to_light / std::sqrt(r2));
    if (cos_theta <= 0) continue;
    d += exposure * light.energy / (4 * M_PI * r2) * cos_theta * light.color;
  }
  return d;
}

}  // namespace l2m
