#include "l2m_core/train/planar_pairs.h"

#include <Eigen/Geometry>
#include <torch/torch.h>

#include <cmath>
#include <random>
#include <stdexcept>

namespace l2m {
namespace {

// Value noise: a hashed lattice, smoothstep-interpolated, two octaves; not
// periodic, so every patch of the plane is distinctive. Its lattice is kept
// at >= ~4 px in the images so that bilinear sampling stays faithful (no
// aliasing), which the GT-consistency test relies on.
double Hash(int64_t ix, int64_t iy, uint64_t seed) {
  uint64_t h = seed ^ (static_cast<uint64_t>(ix) * 0x9E3779B97F4A7C15ull) ^
               (static_cast<uint64_t>(iy) * 0xC2B2AE3D27D4EB4Full);
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) / static_cast<double>(1ull << 53);
}

// `frequency`: lattice cells per unit of plane at the first octave.
double ValueNoise(double u, double v, double frequency, uint64_t seed) {
  double sum = 0, amplitude = 0.65;
  for (int octave = 0; octave < 2; ++octave) {
    const double x = u * frequency, y = v * frequency;
    const double fx = std::floor(x), fy = std::floor(y);
    const int64_t ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
    double tx = x - fx, ty = y - fy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const uint64_t s = seed + 977 * octave;
    const double a = Hash(ix, iy, s), b = Hash(ix + 1, iy, s);
    const double c = Hash(ix, iy + 1, s), d = Hash(ix + 1, iy + 1, s);
    sum += amplitude *
           ((a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty);
    amplitude *= 0.5;
    frequency *= 2.3;
  }
  return std::clamp(sum, 0.0, 1.0);
}

}  // namespace

void PlanarPairOptions::Check() const {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("PlanarPairs." + what);
  };
  if (height < 8 || width < 8) fail("height and width must be >= 8");
  if (num_pairs < 1) fail("num_pairs must be >= 1");
  if (!(max_rotation_deg >= 0 && max_rotation_deg <= 30))
    fail("max_rotation_deg must be in [0, 30]");
  if (!(max_translation >= 0 && max_translation <= 1))
    fail("max_translation must be in [0, 1]");
}

PlanarPairSource::PlanarPairSource(const PlanarPairOptions& options)
    : options_(options) {
  options_.Check();
}

TrainingPair PlanarPairSource::Get(int64_t index) const {
  if (index < 0) throw std::out_of_range("PlanarPairSource: negative index");
  const int64_t i = index % options_.num_pairs;
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ull + i + 1);
  std::uniform_real_distribution<double> u(-1, 1);
  const int H = options_.height, W = options_.width;
  Eigen::Matrix3d K;
  K << 0.8 * W, 0, W / 2.0, 0, 0.8 * W, H / 2.0, 0, 0, 1;
  // Plane n·X = n·P0 in A's frame, facing the camera, tilted up to ~30°.
  const Eigen::Vector3d p0(0, 0, 3 + u(rng));
  const Eigen::Vector3d n =
      Eigen::Vector3d(0.5 * u(rng), 0.5 * u(rng), -1).normalized();
  const double plane_d = n.dot(p0);
  // Texture coordinates on the plane: an orthonormal basis (e1, e2) of it.
  const Eigen::Vector3d e1 = n.cross(Eigen::Vector3d::UnitY()).normalized();
  const Eigen::Vector3d e2 = n.cross(e1);
  const double deg = options_.max_rotation_deg * M_PI / 180;
  const Eigen::Matrix3d R =
      (Eigen::AngleAxisd(deg * u(rng), Eigen::Vector3d::UnitX()) *
       Eigen::AngleAxisd(deg * u(rng), Eigen::Vector3d::UnitY()) *
       Eigen::AngleAxisd(deg * u(rng), Eigen::Vector3d::UnitZ()))
          .toRotationMatrix();
  const Eigen::Vector3d t(options_.max_translation * u(rng),
                          options_.max_translation * u(rng),
                          options_.max_translation * u(rng));
  const uint64_t texture_seed = rng();
  // First-octave lattice cell ≈ 10 px at the plane's mean distance 3.
  const double frequency = K(0, 0) / (3 * 10);
  const Eigen::Matrix3d K_inv = K.inverse();

  // Render one view: ray through each pixel centre (camera frame), to the
  // plane, colour from the texture at the hit point (in A's frame).
  auto render = [&](const Eigen::Matrix3d& R_a_from_cam,
                    const Eigen::Vector3d& centre_in_a,
                    torch::Tensor* image,
                    torch::Tensor* depth) {
    *image = torch::zeros({3, H, W});
    *depth = torch::zeros({H, W});
    auto img = image->accessor<float, 3>();
    auto dep = depth->accessor<float, 2>();
    for (int r = 0; r < H; ++r) {
      for (int c = 0; c < W; ++c) {
        const Eigen::Vector3d ray =
            K_inv * Eigen::Vector3d(c + 0.5, r + 0.5, 1);
        const Eigen::Vector3d dir_a = R_a_from_cam * ray;
        const double denom = n.dot(dir_a);
        if (std::abs(denom) < 1e-9) continue;
        const double s = (plane_d - n.dot(centre_in_a)) / denom;
        if (s <= 0) continue;
        const Eigen::Vector3d x = centre_in_a + s * dir_a;
        const double pu = e1.dot(x), pv = e2.dot(x);
        for (int ch = 0; ch < 3; ++ch) {
          img[ch][r][c] = static_cast<float>(
              ValueNoise(pu, pv, frequency, texture_seed + 31 * ch));
        }
        dep[r][c] = static_cast<float>(s);  // ray has z = 1: s is camera z
      }
    }
  };
  TrainingPair pair;
  render(Eigen::Matrix3d::Identity(),
         Eigen::Vector3d::Zero(),
         &pair.image_a,
         &pair.depth_a);
  // X_B = R X_A + t: B's centre in A is −Rᵀt, its axes Rᵀ.
  render(R.transpose(), -R.transpose() * t, &pair.image_b, &pair.depth_b);
  Eigen::Matrix<float, 3, 3, Eigen::RowMajor> Kf = K.cast<float>();
  pair.calibration_a = torch::from_blob(Kf.data(), {3, 3}).clone();
  pair.calibration_b = pair.calibration_a.clone();
  Eigen::Matrix<float, 4, 4, Eigen::RowMajor> T =
      Eigen::Matrix<float, 4, 4, Eigen::RowMajor>::Identity();
  T.block<3, 3>(0, 0) = R.cast<float>();
  T.block<3, 1>(0, 3) = t.cast<float>();
  pair.cam2_from_cam1 = torch::from_blob(T.data(), {4, 4}).clone();
  pair.name = "planar_" + std::to_string(i);
  return pair;
}

}  // namespace l2m
