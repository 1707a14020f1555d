#pragma once

// `l2m synth scene`: an N-view orbit around a single lifted photo, with the
// true cameras as a COLMAP text model. This is the demo input of
// scripts/demo.sh: a real photo (and, where one exists, its real disparity)
// instead of the ray-cast boxes of demo_scene.h, so SIFT has natural texture
// to match and the recovered poses can be compared with the truth.
//
// World frame = the source photo's camera frame, scaled so that the orbit
// target (on the optical axis, at the median depth) is at z = 1.

#include "synth/lifting.h"
#include "synth/novel_view.h"

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace l2m {

struct SceneOptions {
  int num_views = 12;
  int width = 640;
  int height = 480;
  // Focal length = focal_fraction * width (both axes), principal point at the
  // image centre; one camera shared by all views.
  double focal_fraction = 0.9;
  // Yaw sweep of the orbit around the target (degrees, total).
  double arc_degrees = 24;
  // The cameras rise by up to this much (degrees) towards the middle of the
  // arc, so that their centres are not collinear.
  double elevation_degrees = 4;
  // Orbit radius in units of the target depth: 1 passes through the source
  // camera's centre (the least disocclusion).
  double radius = 1;
  // Random per-view perturbation of the viewing direction and roll
  // (uniform in [-jitter, jitter] degrees, seeded).
  double jitter_degrees = 1;
  // Far depths are clamped to this multiple of the nearest one: a horizon at
  // (near) infinity would fill the novel views with stretched sky.
  double max_depth_ratio = 12;
  // Added to a disparity file's values before inverting (Middlebury's doffs:
  // depth = baseline * f / (d + doffs)); with it and the true focal length
  // the lifted scene has the photo's real relief.
  double disparity_offset = 0;
  // Inpaint unknown pixels of a disparity/depth file and median-filter it
  // (5x5), so that measurement gaps and speckle do not become holes.
  bool fill_unknown_depth = true;
  // Input kind, invalid value, input scale and the discontinuity test
  // (alpha_scale, alpha_threshold) come from here; size and focal ranges are
  // not used (width/height/focal_fraction above are).
  LiftingOptions lifting;
  NovelViewOptions view;
  uint64_t seed = 0;

  bool Check(std::string* error) const;
};

// Resizes (the image covers width x height) and centre-crops.
cv::Mat ResizeAndCenterCropTo(const cv::Mat& image,
                              int width,
                              int height,
                              bool nearest);

// Lifts the photo: depth from the disparity file (depth = 1/disparity: the
// photo's true relief up to scale when it is a stereo disparity; or the
// depth itself with input_kind depth) or, without one, the procedural depth
// of lifting.h. Depth is clamped to max_depth_ratio * nearest and scaled so
// that the median is 1. Errors name the file (missing, corrupt, wrong size).
LiftedImage LiftScenePhoto(const std::string& image_path,
                           const std::string& disparity_path,
                           const SceneOptions& options);

// cam_from_world of view k (4x4), world = the lifted photo's camera frame.
std::vector<Eigen::Matrix4d> OrbitPoses(const SceneOptions& options);

struct SceneSummary {
  int num_views = 0;
  PinholeCamera camera;
  double mean_hole_fraction = 0;
  double max_hole_fraction = 0;
};

// Writes OUTPUT/images/view_NN.png, OUTPUT/depth/view_NN.npy (float32 camera
// z, 0 = hole or unknown), OUTPUT/holes/view_NN.png (255 = filled hole),
// OUTPUT/ground_truth/{cameras,images,points3D}.txt (COLMAP text model of the
// true cameras, PINHOLE, no points) and OUTPUT/scene.json.
SceneSummary WriteScene(const std::string& image_path,
                        const std::string& disparity_path,
                        const std::string& output_dir,
                        const SceneOptions& options);

}  // namespace l2m
