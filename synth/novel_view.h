#pragma once

// Stage 2.1, part 2: rendering a novel view of a lifted photo and its exact
// dense ground truth. All pixel coordinates are COLMAP's (top-left pixel
// centre at (0.5, 0.5)); transforms are `target_from_source`.

#include "synth/lifting.h"
#include "synth/rasterizer.h"

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <string>

namespace l2m {

// A photo lifted to a per-pixel mesh.
struct LiftedImage {
  cv::Mat image;           // CV_8UC3 (BGR), one vertex colour per pixel.
  cv::Mat depth;           // CV_32F camera z of each pixel centre; 0 = unknown.
  cv::Mat vertex_visible;  // CV_8U, 255 where the discontinuity test passes.
  PinholeCamera camera;
};

// Lifts `image` with a normalised disparity (NaN = unknown) of the same size.
LiftedImage LiftImage(const cv::Mat& image,
                      const cv::Mat& normalized_disparity,
                      const PinholeCamera& camera,
                      const LiftingOptions& options);

// Camera-frame points of every pixel centre: depth * K^-1 (c + 0.5, r + 0.5,
// 1).
std::vector<Eigen::Vector3f> UnprojectDepth(const cv::Mat& depth,
                                            const PinholeCamera& camera);

struct NovelViewOptions {
  // Fill holes with OpenCV's inpainting (Telea). The reference uses a Stable
  // Diffusion inpainter, which cannot run offline here.
  bool inpaint = true;
  double inpaint_radius = 5;
  // > 1: inpaint at 1/scale resolution (blocks averaged over their known
  // pixels) and upsample the fill into the holes: about scale^4 times less
  // Telea work, a blurrier fill; known pixels are untouched either way.
  int inpaint_scale = 1;
  // Hole where the interpolated vertex visibility is below this (the
  // reference's warp_mask = mask < 0.5).
  double visibility_threshold = 0.5;
  RasterOptions raster;

  bool Check(std::string* error) const;
};

struct NovelView {
  PinholeCamera camera;
  Eigen::Matrix4d cam2_from_cam1 = Eigen::Matrix4d::Identity();
  cv::Mat raw_image;  // CV_8UC3, holes black.
  cv::Mat image;      // CV_8UC3, holes inpainted (== raw_image without it).
  cv::Mat hole_mask;  // CV_8U, 255 = hole (no visible surface).
  cv::Mat depth;      // CV_32F camera z; 0 in holes (unsupervised).
};

NovelView RenderNovelView(const LiftedImage& source,
                          const PinholeCamera& camera2,
                          const Eigen::Matrix4d& cam2_from_cam1,
                          const NovelViewOptions& options);

// Dense ground truth from depth + intrinsics + pose, as RoMa's warp_kpts /
// get_gt_warp (which the reference's outputs are meant for): each pixel
// centre of A with depth > 0 is projected into B; it is valid iff it lands
// strictly inside B, B's depth there (bilinear, zero outside) is > 0, and
// |z_projected - z_B| / z_B < consistency_threshold (occlusion test).
struct GtWarp {
  cv::Mat warp;   // CV_32FC2: COLMAP pixel coordinates in B; NaN if invalid.
  cv::Mat valid;  // CV_8U, 255 = valid correspondence.
  double covisibility = 0;  // Fraction of A's pixels that are valid.
};

GtWarp ComputeGtWarp(const cv::Mat& depth_a,
                     const PinholeCamera& camera_a,
                     const cv::Mat& depth_b,
                     const PinholeCamera& camera_b,
                     const Eigen::Matrix4d& b_from_a,
                     double consistency_threshold = 0.05,
                     int num_threads = 0);

// Side-by-side debug picture with `num_matches` random valid GT matches drawn
// (deterministic in `seed`).
cv::Mat DrawGtMatches(const cv::Mat& image_a,
                      const cv::Mat& image_b,
                      const GtWarp& warp,
                      int num_matches,
                      uint64_t seed);

}  // namespace l2m
