#pragma once

// Stage 2.2: relighting a lifted photo (the reference's relight.py renders the
// lifted mesh in Blender with 2-5 random point lights; here the shading is
// computed directly): normals from the depth, Lambertian point lights +
// ambient, optional Blinn-Phong specular and cast shadows from a light-space
// depth map rendered with the mesh rasteriser.

#include "synth/lifting.h"
#include "synth/lighting.h"

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <random>
#include <string>
#include <vector>

namespace l2m {

// Unit camera-frame normals facing the camera (CV_32FC3), zero where the
// depth is unknown (0).
cv::Mat ComputeNormals(const cv::Mat& depth,
                       const PinholeCamera& camera,
                       double smoothing_sigma);

// Relit image: albedo (the input, in [0,1]) * (ambient + sum of diffuse
// terms) + specular. Pixels with unknown depth (holes, sky) take the shading
// of their valid neighbourhood. With no lights and ambient 1 it returns the
// input unchanged.
cv::Mat Relight(const cv::Mat& image,
                const cv::Mat& depth,
                const PinholeCamera& camera,
                const Lighting& lighting,
                const RelightOptions& options);

}  // namespace l2m
