#include "synth/rasterizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

namespace {
int NumThreads(int requested) {
  return requested > 0 ? requested
                       : static_cast<int>(
                             std::max(1u, std::thread::hardware_concurrency()));
}
}  // namespace

void ParallelFor(int n,
                 int num_threads,
                 const std::function<void(int, int)>& body) {
  const int threads = std::max(1, std::min(NumThreads(num_threads), n));
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

// Without SSE4.1 (the portable x86-64 build) std::floor/std::ceil are library
// calls; these are exact for the clamped ranges used here.
inline int FloorToInt(float x) {
  const int i = static_cast<int>(x);
  return i - (x < static_cast<float>(i));
}
inline int CeilToInt(float x) {
  const int i = static_cast<int>(x);
  return i + (x > static_cast<float>(i));
}

inline float Edge(const ScreenVertex& a,
                  const ScreenVertex& b,
                  float px,
                  float py) {
  return (b.x - a.x) * (py - a.y) - (b.y - a.y) * (px - a.x);
}

// Barycentric coordinates of (px, py); the one formula used both to test
// coverage and to resolve the winner, so both agree bit for bit.
inline void Barycentric(const ScreenVertex& v0,
                        const ScreenVertex& v1,
                        const ScreenVertex& v2,
                        float inv_area,
                        float px,
                        float py,
                        float* l0,
                        float* l1,
                        float* l2) {
  *l0 = Edge(v1, v2, px, py) * inv_area;
  *l1 = Edge(v2, v0, px, py) * inv_area;
  *l2 = Edge(v0, v1, px, py) * inv_area;
}

// A z-buffer entry: the depth's float bits (monotonic for z > 0) above the
// face index, so one integer min keeps the nearest surface and, on an exact
// depth tie, the lower face: the result does not depend on the thread count.
constexpr uint64_t kEmpty = std::numeric_limits<uint64_t>::max();
inline uint64_t MakeKey(float z, int face) {
  uint32_t bits;
  std::memcpy(&bits, &z, sizeof(bits));
  return (static_cast<uint64_t>(bits) << 32) | static_cast<uint32_t>(face);
}
inline float KeyDepth(uint64_t key) {
  const uint32_t bits = static_cast<uint32_t>(key >> 32);
  float z;
  std::memcpy(&z, &bits, sizeof(z));
  return z;
}

// Rasterises one triangle whose pixel-centre box [c0, c1] x [r0, r1] is
// already clipped to the image.
inline void RasterTriangle(const ScreenVertex& v0,
                           const ScreenVertex& v1,
                           const ScreenVertex& v2,
                           int face,
                           int width,
                           int c0,
                           int c1,
                           int r0,
                           int r1,
                           uint64_t* keys) {
  const float area = Edge(v0, v1, v2.x, v2.y);
  if (std::abs(area) < 1e-12f) return;
  const float inv_area = 1.0f / area;
  // Inclusive test with a tiny tolerance so that pixel centres on shared
  // edges/vertices are never lost to rounding (the z-test settles ties).
  const float eps = -1e-5f;
  // On one row each barycentric coordinate is affine in px, l = g * px + h,
  // so the row's span is known in advance: long thin triangles (stretched
  // across depth discontinuities) then cost their length, not their box.
  // The span is widened by a pixel and every pixel still takes the exact
  // test below, so coverage is the same as testing the whole box.
  const ScreenVertex* from[3] = {&v1, &v2, &v0};
  const ScreenVertex* to[3] = {&v2, &v0, &v1};
  const bool wide = c1 - c0 > 2;
  float g[3] = {0, 0, 0}, inv_g[3] = {0, 0, 0};
  if (wide) {
    for (int e = 0; e < 3; ++e) {
      g[e] = -(to[e]->y - from[e]->y) * inv_area;
      inv_g[e] = g[e] != 0 ? 1.0f / g[e] : 0.0f;
    }
  }
  for (int r = r0; r <= r1; ++r) {
    const float py = r + 0.5f;
    int lo = c0, hi = c1;
    if (wide) {
      float x_lo = c0 - 1.0f, x_hi = c1 + 1.0f;  // In pixel-centre units.
      for (int e = 0; e < 3; ++e) {
        const ScreenVertex& a = *from[e];
        const ScreenVertex& b = *to[e];
        // l at px = a.x is (b.x - a.x) * (py - a.y) * inv_area.
        const float h_at_ax = (b.x - a.x) * (py - a.y) * inv_area;
        if (g[e] == 0) {
          if (h_at_ax < eps) x_hi = x_lo - 1;  // Empty row.
          continue;
        }
        const float bound = a.x + (eps - h_at_ax) * inv_g[e] - 0.5f;
        if (g[e] > 0)
          x_lo = std::max(x_lo, bound);
        else
          x_hi = std::min(x_hi, bound);
      }
      if (!(x_lo <= x_hi)) continue;
      lo = std::max(c0, FloorToInt(x_lo) - 1);
      hi = std::min(c1, CeilToInt(x_hi) + 1);
    }
    uint64_t* row = keys + static_cast<size_t>(r) * width;
    for (int c = lo; c <= hi; ++c) {
      const float px = c + 0.5f;
      float l0, l1, l2;
      Barycentric(v0, v1, v2, inv_area, px, py, &l0, &l1, &l2);
      if (l0 < eps || l1 < eps || l2 < eps) continue;
      // Perspective-correct: 1/z is affine in screen space.
      const float inv_z = l0 * v0.inv_z + l1 * v1.inv_z + l2 * v2.inv_z;
      if (!(inv_z > 0)) continue;
      const uint64_t key = MakeKey(1.0f / inv_z, face);
      if (key < row[c]) row[c] = key;
    }
  }
}

// The one pixel centre (c, r) against one triangle (most triangles of a view
// near the source cover at most one).
inline void RasterPixel(const ScreenVertex& v0,
                        const ScreenVertex& v1,
                        const ScreenVertex& v2,
                        int face,
                        int c,
                        int r,
                        uint64_t* key) {
  const float area = Edge(v0, v1, v2.x, v2.y);
  if (std::abs(area) < 1e-12f) return;
  const float inv_area = 1.0f / area;
  const float eps = -1e-5f;
  float l0, l1, l2;
  Barycentric(v0, v1, v2, inv_area, c + 0.5f, r + 0.5f, &l0, &l1, &l2);
  if (l0 < eps || l1 < eps || l2 < eps) return;
  const float inv_z = l0 * v0.inv_z + l1 * v1.inv_z + l2 * v2.inv_z;
  if (!(inv_z > 0)) return;
  const uint64_t k = MakeKey(1.0f / inv_z, face);
  if (k < *key) *key = k;
}

// Rasterises the quads of source rows [i_begin, i_end) into `keys`.
void RasterQuadRows(const std::vector<ScreenVertex>& screen,
                    int cols,
                    int width,
                    int height,
                    int i_begin,
                    int i_end,
                    uint64_t* keys) {
  // Pixel centres c + 0.5 inside [min, max]: c in [ceil(min - 0.5),
  // floor(max - 0.5)]. Boxes are clipped to the image before converting.
  const float x_hi = width - 0.5f, y_hi = height - 0.5f;
  for (int i = i_begin; i < i_end; ++i) {
    const ScreenVertex* top = &screen[static_cast<size_t>(i) * cols];
    const ScreenVertex* bottom = top + cols;
    for (int j = 0; j + 1 < cols; ++j) {
      const ScreenVertex& a = top[j];
      const ScreenVertex& b = top[j + 1];
      const ScreenVertex& c = bottom[j];
      const ScreenVertex& d = bottom[j + 1];
      if (!(b.inv_z > 0 && c.inv_z > 0)) continue;  // Both faces use b, c.
      const bool va = a.inv_z > 0, vd = d.inv_z > 0;
      // One box test for the quad: most quads of a view near the source
      // cover zero or one pixel centre.
      float min_x = std::min(b.x, c.x), max_x = std::max(b.x, c.x);
      float min_y = std::min(b.y, c.y), max_y = std::max(b.y, c.y);
      if (va) {
        min_x = std::min(min_x, a.x), max_x = std::max(max_x, a.x);
        min_y = std::min(min_y, a.y), max_y = std::max(max_y, a.y);
      }
      if (vd) {
        min_x = std::min(min_x, d.x), max_x = std::max(max_x, d.x);
        min_y = std::min(min_y, d.y), max_y = std::max(max_y, d.y);
      }
      if (!(max_x >= 0.5f && min_x <= x_hi && max_y >= 0.5f && min_y <= y_hi))
        continue;
      const int qc0 = CeilToInt(std::max(min_x, 0.5f) - 0.5f);
      const int qc1 = FloorToInt(std::min(max_x, x_hi) - 0.5f);
      const int qr0 = CeilToInt(std::max(min_y, 0.5f) - 0.5f);
      const int qr1 = FloorToInt(std::min(max_y, y_hi) - 0.5f);
      if (qc0 > qc1 || qr0 > qr1) continue;
      const int face = 2 * (i * (cols - 1) + j);
      const bool small = qc0 == qc1 && qr0 == qr1;
      auto triangle = [&](const ScreenVertex& v0,
                          const ScreenVertex& v1,
                          const ScreenVertex& v2,
                          int f) {
        if (small) {
          RasterPixel(v0,
                      v1,
                      v2,
                      f,
                      qc0,
                      qr0,
                      keys + static_cast<size_t>(qr0) * width + qc0);
          return;
        }
        const float tx0 = std::max(std::min({v0.x, v1.x, v2.x}), 0.5f);
        const float tx1 = std::min(std::max({v0.x, v1.x, v2.x}), x_hi);
        const float ty0 = std::max(std::min({v0.y, v1.y, v2.y}), 0.5f);
        const float ty1 = std::min(std::max({v0.y, v1.y, v2.y}), y_hi);
        if (!(tx0 <= tx1 && ty0 <= ty1)) return;
        RasterTriangle(v0,
                       v1,
                       v2,
                       f,
                       width,
                       CeilToInt(tx0 - 0.5f),
                       FloorToInt(tx1 - 0.5f),
                       CeilToInt(ty0 - 0.5f),
                       FloorToInt(ty1 - 0.5f),
                       keys);
      };
      if (va) triangle(a, b, c, face);
      if (vd) triangle(b, d, c, face + 1);
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
  // Every element is written below (resolve pass), so no pre-fill; resize
  // keeps the capacity of a reused Fragments (no page faults per view).
  f->depth.resize(n);
  f->face.resize(n);
  f->weight1.resize(n);
  f->weight2.resize(n);
  if (rows < 2 || cols < 2 || n == 0) {
    std::fill(f->depth.begin(), f->depth.end(), 0.0f);
    std::fill(f->face.begin(), f->face.end(), -1);
    std::fill(f->weight1.begin(), f->weight1.end(), 0.0f);
    std::fill(f->weight2.begin(), f->weight2.end(), 0.0f);
    return;
  }

  // Scratch buffers live as long as the thread: a few MB that would
  // otherwise be mapped, faulted in and unmapped again for every view.
  // (Named through references: inside the worker lambdas a thread_local
  // name would denote the worker's own, empty, instance.)
  thread_local std::vector<ScreenVertex> screen_buffer;
  thread_local std::vector<std::vector<uint64_t>> keys_buffer;
  std::vector<ScreenVertex>& screen = screen_buffer;
  std::vector<std::vector<uint64_t>>& keys = keys_buffer;
  screen.resize(points.size());
  const float fx = static_cast<float>(camera.fx),
              fy = static_cast<float>(camera.fy);
  const float cx = static_cast<float>(camera.cx),
              cy = static_cast<float>(camera.cy);
  const float near_plane = static_cast<float>(options.near_plane);
  const int threads =
      std::max(1, std::min(NumThreads(options.num_threads), rows - 1));
  ParallelFor(
      static_cast<int>(points.size()), threads, [&](int begin, int end) {
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

  // Each worker rasterises a contiguous block of source rows into its own
  // z-buffer of keys (no locking, and every quad is visited once in all);
  // the buffers are then merged by key and the winners resolved into
  // fragments, both in parallel over output rows.
  if (static_cast<int>(keys.size()) < threads) keys.resize(threads);
  ParallelFor(threads, threads, [&](int t_begin, int t_end) {
    for (int t = t_begin; t < t_end; ++t) {
      keys[t].assign(n, kEmpty);
      const int quad_rows = rows - 1;
      const int i_begin =
          static_cast<int>(static_cast<int64_t>(quad_rows) * t / threads);
      const int i_end =
          static_cast<int>(static_cast<int64_t>(quad_rows) * (t + 1) / threads);
      RasterQuadRows(
          screen, cols, width, height, i_begin, i_end, keys[t].data());
    }
  });
  ParallelFor(height, threads, [&](int r_begin, int r_end) {
    for (int r = r_begin; r < r_end; ++r) {
      for (int c = 0; c < width; ++c) {
        const size_t index = static_cast<size_t>(r) * width + c;
        uint64_t key = keys[0][index];
        for (int t = 1; t < threads; ++t) key = std::min(key, keys[t][index]);
        if (key == kEmpty) {
          f->depth[index] = 0;
          f->face[index] = -1;
          f->weight1[index] = 0;
          f->weight2[index] = 0;
          continue;
        }
        const int face = static_cast<int>(key & 0xffffffffu);
        int v[3];
        GridFaceVertices(face, cols, v);
        const ScreenVertex &v0 = screen[v[0]], &v1 = screen[v[1]],
                           &v2 = screen[v[2]];
        const float inv_area = 1.0f / Edge(v0, v1, v2.x, v2.y);
        float l0, l1, l2;
        Barycentric(v0, v1, v2, inv_area, c + 0.5f, r + 0.5f, &l0, &l1, &l2);
        const float z = KeyDepth(key);
        f->depth[index] = z;
        f->face[index] = face;
        f->weight1[index] = l1 * v1.inv_z * z;
        f->weight2[index] = l2 * v2.inv_z * z;
      }
    }
  });
}

}  // namespace l2m
