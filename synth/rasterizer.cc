#include "synth/rasterizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

namespace l2m {

bool RasterOptions::Check(std::string* error) const {
  if (!(near_plane > 0)) {
    *error = "Raster.near_plane must be > 0";
    return false;
  }
  if (num_threads < 0) {
    *error = "num_threads must be >= 0 (0 = all hardware threads)";
    return false;
  }
  return true;
}

void ParallelFor(int n,
                 int num_threads,
                 const std::function<void(int, int)>& body) {
  int threads = num_threads > 0
                    ? num_threads
                    : std::max(1u, std::thread::hardware_concurrency());
  threads = std::max(1, std::min(threads, n));
  if (threads == 1) {
    body(0, n);
    return;
  }
  std::vector<std::thread> workers;
  const int chunk = (n + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const int begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin < end) workers.emplace_back(body, begin, end);
  }
  body(0, std::min(n, chunk));
  for (auto& w : workers) w.join();
}

namespace {

struct ScreenVertex {
  float x, y;   // COLMAP pixel coordinates.
  float inv_z;  // 1 / camera z; 0 marks an invalid vertex.
};

inline float Edge(const ScreenVertex& a,
                  const ScreenVertex& b,
                  float px,
                  float py) {
  return (b.x - a.x) * (py - a.y) - (b.y - a.y) * (px - a.x);
}

// Rasterises one triangle into rows [row_begin, row_end).
inline void RasterTriangle(const ScreenVertex& v0,
                           const ScreenVertex& v1,
                           const ScreenVertex& v2,
                           int face,
                           int width,
                           int row_begin,
                           int row_end,
                           Fragments* f) {
  const float area = Edge(v0, v1, v2.x, v2.y);
  if (std::abs(area) < 1e-12f) return;
  const float min_x = std::min({v0.x, v1.x, v2.x});
  const float max_x = std::max({v0.x, v1.x, v2.x});
  const float min_y = std::min({v0.y, v1.y, v2.y});
  const float max_y = std::max({v0.y, v1.y, v2.y});
  // Pixel centres c + 0.5 inside [min, max].
  const int c0 = std::max(0, static_cast<int>(std::ceil(min_x - 0.5f)));
  const int c1 =
      std::min(width - 1, static_cast<int>(std::floor(max_x - 0.5f)));
  const int r0 = std::max(row_begin, static_cast<int>(std::ceil(min_y - 0.5f)));
  const int r1 =
      std::min(row_end - 1, static_cast<int>(std::floor(max_y - 0.5f)));
  if (c0 > c1 || r0 > r1) return;
  const float inv_area = 1.0f / area;
  // Inclusive test with a tiny tolerance so that pixel centres on shared
  // edges/vertices are never lost to rounding (the z-test settles ties).
  const float eps = -1e-5f;
  for (int r = r0; r <= r1; ++r) {
    const float py = r + 0.5f;
    for (int c = c0; c <= c1; ++c) {
      const float px = c + 0.5f;
      const float l0 = Edge(v1, v2, px, py) * inv_area;
      const float l1 = Edge(v2, v0, px, py) * inv_area;
      const float l2 = Edge(v0, v1, px, py) * inv_area;
      if (l0 < eps || l1 < eps || l2 < eps) continue;
      // Perspective-correct: 1/z is affine in screen space.
      const float inv_z = l0 * v0.inv_z + l1 * v1.inv_z + l2 * v2.inv_z;
      if (!(inv_z > 0)) continue;
      const float z = 1.0f / inv_z;
      const int index = r * width + c;
      const float current = f->depth[index];
      if (current > 0 && current <= z) continue;
      f->depth[index] = z;
      f->face[index] = face;
      f->weight1[index] = l1 * v1.inv_z * z;
      f->weight2[index] = l2 * v2.inv_z * z;
    }
  }
}

}  // namespace

void RasterizeGridMesh(const std::vector<Eigen::Vector3f>& points,
                       int rows,
                       int cols,
                       const uint8_t* vertex_valid,
                       const PinholeCamera& camera,
                       const RasterOptions& options,
                       Fragments* f) {
  const int width = camera.width, height = camera.height;
  f->width = width;
  f->height = height;
  const size_t n = static_cast<size_t>(width) * height;
  f->depth.assign(n, 0.0f);
  f->face.assign(n, -1);
  f->weight1.assign(n, 0.0f);
  f->weight2.assign(n, 0.0f);
  if (rows < 2 || cols < 2) return;

  std::vector<ScreenVertex> screen(points.size());
  const float fx = static_cast<float>(camera.fx),
              fy = static_cast<float>(camera.fy);
  const float cx = static_cast<float>(camera.cx),
              cy = static_cast<float>(camera.cy);
  const float near_plane = static_cast<float>(options.near_plane);
  ParallelFor(
      static_cast<int>(points.size()),
      options.num_threads,
      [&](int begin, int end) {
        for (int k = begin; k < end; ++k) {
          const Eigen::Vector3f& p = points[k];
          ScreenVertex& s = screen[k];
          if ((vertex_valid && !vertex_valid[k]) || !(p.z() >= near_plane)) {
            s = {0, 0, 0};
            continue;
          }
          s.inv_z = 1.0f / p.z();
          s.x = fx * p.x() * s.inv_z + cx;
          s.y = fy * p.y() * s.inv_z + cy;
        }
      });

  // Bands of output rows: each worker owns its rows of the buffers, so no
  // locking; each scans all quads and skips those outside its band.
  int threads = options.num_threads > 0
                    ? options.num_threads
                    : std::max(1u, std::thread::hardware_concurrency());
  threads = std::max(1, std::min(threads, height));
  ParallelFor(threads, threads, [&](int t_begin, int t_end) {
    for (int t = t_begin; t < t_end; ++t) {
      const int row_begin =
          static_cast<int>(static_cast<int64_t>(height) * t / threads);
      const int row_end =
          static_cast<int>(static_cast<int64_t>(height) * (t + 1) / threads);
      const float band_lo = row_begin + 0.5f, band_hi = row_end - 0.5f;
      for (int i = 0; i + 1 < rows; ++i) {
        const ScreenVertex* top = &screen[static_cast<size_t>(i) * cols];
        const ScreenVertex* bottom = top + cols;
        for (int j = 0; j + 1 < cols; ++j) {
          const ScreenVertex& a = top[j];
          const ScreenVertex& b = top[j + 1];
          const ScreenVertex& c = bottom[j];
          const ScreenVertex& d = bottom[j + 1];
          const bool va = a.inv_z > 0, vb = b.inv_z > 0, vc = c.inv_z > 0,
                     vd = d.inv_z > 0;
          if (!(vb && vc)) continue;  // Both faces use b and c.
          const float lo = std::min({a.y, b.y, c.y, d.y});
          const float hi = std::max({a.y, b.y, c.y, d.y});
          if (hi < band_lo || lo > band_hi) continue;
          const int face = 2 * (i * (cols - 1) + j);
          if (va) RasterTriangle(a, b, c, face, width, row_begin, row_end, f);
          if (vd)
            RasterTriangle(b, d, c, face + 1, width, row_begin, row_end, f);
        }
      }
    }
  });
}

}  // namespace l2m
