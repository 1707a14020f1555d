#pragma once

// A z-buffer rasteriser for the per-pixel triangle mesh of a lifted image
// (one vertex per source pixel, two triangles per 2x2 pixel quad, as the
// reference's RGBDRenderer.get_faces), on the CPU, multi-threaded over bands
// of output rows. It produces "fragments" (nearest face, its perspective-
// correct barycentric weights and depth) so that any per-vertex attribute can
// be interpolated afterwards (deferred shading).
//
// Pixel coordinates are COLMAP's: pixel (row r, col c) is sampled at its
// centre (c + 0.5, r + 0.5).

#include "synth/camera.h"

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace l2m {

struct RasterOptions {
  // Vertices nearer than this (camera z) are dropped with their faces.
  double near_plane = 0.01;
  // Worker threads; 0 = all hardware threads.
  int num_threads = 0;

  bool Check(std::string* error) const;
};

// Grid mesh: vertex (i, j) of a rows x cols grid has index i * cols + j.
// Faces of quad q = i * (cols - 1) + j: face 2q = (v(i,j), v(i,j+1), v(i+1,j))
// and face 2q+1 = (v(i,j+1), v(i+1,j+1), v(i+1,j)).
inline void GridFaceVertices(int face, int cols, int v[3]) {
  const int q = face >> 1;
  const int i = q / (cols - 1), j = q % (cols - 1);
  const int a = i * cols + j;
  if ((face & 1) == 0) {
    v[0] = a;
    v[1] = a + 1;
    v[2] = a + cols;
  } else {
    v[0] = a + 1;
    v[1] = a + cols + 1;
    v[2] = a + cols;
  }
}

struct Fragments {
  int width = 0;
  int height = 0;
  std::vector<float> depth;    // Camera z of the nearest surface; 0 = empty.
  std::vector<int32_t> face;   // Nearest face, -1 = empty.
  std::vector<float> weight1;  // Barycentric weights of the face's vertices
  std::vector<float> weight2;  // 1 and 2 (vertex 0 has 1 - w1 - w2).

  bool Covered(int index) const { return face[index] >= 0; }
  // Interpolates a per-vertex attribute at a covered pixel.
  template <typename T>
  T Interpolate(int index, int cols, const T* vertex_values) const {
    int v[3];
    GridFaceVertices(face[index], cols, v);
    const float w1 = weight1[index], w2 = weight2[index];
    return vertex_values[v[0]] * (1 - w1 - w2) + vertex_values[v[1]] * w1 +
           vertex_values[v[2]] * w2;
  }
};

// Rasterises the grid mesh whose vertices are given in the target camera's
// frame (`points`, rows * cols, row-major). Vertices with valid == 0 (when
// `vertex_valid` is not null) or behind the near plane drop their faces.
void RasterizeGridMesh(const std::vector<Eigen::Vector3f>& points,
                       int rows,
                       int cols,
                       const uint8_t* vertex_valid,
                       const PinholeCamera& camera,
                       const RasterOptions& options,
                       Fragments* fragments);

// Runs body(begin, end) over [0, n) split into `num_threads` contiguous
// chunks (0 = hardware threads); the calling thread takes one chunk.
void ParallelFor(int n,
                 int num_threads,
                 const std::function<void(int, int)>& body);

}  // namespace l2m
