#pragma once

// A small built-in scene to reconstruct when the user has no photos at hand:
// textured boxes on a ground plane in front of a wall, seen by cameras on an
// arc, ray-cast exactly (no approximations), so every run of the demo works
// offline and the true poses are known.

#include <string>

namespace l2m {

struct DemoSceneOptions {
  int num_views = 12;
  int width = 640;
  int height = 480;
  double focal_length = 520;  // Pixels.
  // Total arc the cameras sweep around the scene (degrees).
  double arc_degrees = 50;
  unsigned seed = 1;

  bool Check(std::string* error) const;
};

// Writes OUTPUT/images/view_NN.png and OUTPUT/ground_truth/{cameras,images,
// points3D}.txt (COLMAP text model of the true cameras, no points).
void WriteDemoScene(const std::string& output_dir,
                    const DemoSceneOptions& options);

}  // namespace l2m
