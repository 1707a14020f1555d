#pragma once

// Cameras and relative poses of the synthesis subsystem, free of OpenCV so
// that the on-the-fly training pairs (train_pairs.h) build on machines with
// LibTorch but no OpenCV (L2M_CORE_ONLY).
//
// Pixel coordinates everywhere in synth/ are COLMAP's: the centre of the
// top-left pixel is (0.5, 0.5), so pixel (row i, col j) has its centre at
// (j + 0.5, i + 0.5) and the image spans [0, W] x [0, H].

#include <Eigen/Core>

#include <cstdint>
#include <random>
#include <string>

namespace l2m {

// Pinhole camera in COLMAP pixel coordinates.
struct PinholeCamera {
  int width = 0;
  int height = 0;
  double fx = 0, fy = 0, cx = 0, cy = 0;

  Eigen::Matrix3d K() const;
  // Reference intrinsics: f = focal_fraction * W (both axes), principal point
  // at the image centre (W/2, H/2) — the reference's K scaled by 512.
  static PinholeCamera FromFocalFraction(int width,
                                         int height,
                                         double focal_fraction);
};

// Ranges of the random relative pose (reference get_rand_ext,
// trans_range {x: 0.4, y: 0.4, z: 0.8, a: 18, b: 18, c: 18}): each component
// has magnitude uniform in [max/2, max] and a random sign; a negative max
// disables the component. Rotation components are axis-angle, max pi/18
// rad = 10 degrees (the reference's a = 18 means pi/18).
struct PoseRangeOptions {
  double max_tx = 0.4;
  double max_ty = 0.4;
  double max_tz = 0.8;
  double max_rx_deg = 10;
  double max_ry_deg = 10;
  double max_rz_deg = 10;

  bool Check(std::string* error) const;
};

// cam2_from_cam1 (X2 = R X1 + t), as the reference's M = T * R.
Eigen::Matrix4d SampleCam2FromCam1(const PoseRangeOptions& options,
                                   std::mt19937_64* rng);

// Stable seed from a base seed and a name (FNV-1a), so a photo's views do not
// depend on processing order or on the number of workers.
uint64_t SeedFor(uint64_t base_seed, const std::string& name, int index);

}  // namespace l2m
