#include "synth/disparity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace l2m {

std::vector<float> ProceduralDisparityUnnormalized(int width,
                                                   int height,
                                                   uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> disp(static_cast<size_t>(width) * height);
  // Ground plane: disparity of a plane is affine in the pixel coordinates,
  // zero-ish at the horizon.
  const double horizon = (0.25 + 0.25 * u(rng)) * height;
  const double ground_gain = 0.35 + 0.35 * u(rng);
  const double ground_tilt = (u(rng) - 0.5) * 0.2;
  // Smooth relief: a few random low-frequency sinusoids.
  double ax[3], fx[3], fy[3], ph[3];
  for (int k = 0; k < 3; ++k) {
    ax[k] = 0.01 + 0.02 * u(rng);
    fx[k] = (0.5 + 2.5 * u(rng)) * 2 * M_PI / width;
    fy[k] = (0.5 + 2.5 * u(rng)) * 2 * M_PI / height;
    ph[k] = 2 * M_PI * u(rng);
  }
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const double x = c + 0.5, y = r + 0.5;
      double d = 0.02;
      if (y > horizon)
        d += ground_gain * (y - horizon) / (height - horizon) +
             ground_tilt * (x / width - 0.5) * (y - horizon) / height;
      double relief = 0;
      for (int k = 0; k < 3; ++k)
        relief += ax[k] * std::sin(fx[k] * x + fy[k] * y + ph[k]);
      disp[static_cast<size_t>(r) * width + c] =
          static_cast<float>(std::max(0.005, d + relief * (y > horizon)));
    }
  }
  // Layers standing on the ground (nearer wins, as in a z-buffer): boxes and
  // ellipses with slanted-plane disparity, borders are discontinuities.
  const int layers = 2 + static_cast<int>(u(rng) * 4);
  for (int l = 0; l < layers; ++l) {
    const double w = (0.12 + 0.3 * u(rng)) * width;
    const double h = (0.2 + 0.45 * u(rng)) * height;
    const double x0 = u(rng) * (width - w);
    const double bottom = horizon + (0.1 + 0.9 * u(rng)) * (height - horizon);
    const double y0 = std::max(0.0, bottom - h);
    const bool ellipse = u(rng) < 0.4;
    const double base = 0.02 +
                        ground_gain * (bottom - horizon) / (height - horizon) +
                        0.05 + 0.15 * u(rng);
    const double slope_x = (u(rng) - 0.5) * 0.3 / width;
    for (int r = static_cast<int>(y0); r < std::min<int>(height, bottom); ++r) {
      for (int c = static_cast<int>(x0); c < std::min<int>(width, x0 + w);
           ++c) {
        const double x = c + 0.5, y = r + 0.5;
        if (ellipse) {
          const double ex = (x - x0 - w / 2) / (w / 2);
          const double ey = (y - y0 - (bottom - y0) / 2) / ((bottom - y0) / 2);
          if (ex * ex + ey * ey > 1) continue;
        }
        const float d = static_cast<float>(base + slope_x * (x - x0 - w / 2));
        float& cur = disp[static_cast<size_t>(r) * width + c];
        cur = std::max(cur, d);
      }
    }
  }
  return disp;
}

std::vector<float> ProceduralDisparityValues(int width,
                                             int height,
                                             uint64_t seed) {
  std::vector<float> disp =
      ProceduralDisparityUnnormalized(width, height, seed);
  const auto [lo_it, hi_it] = std::minmax_element(disp.begin(), disp.end());
  const double lo = *lo_it, hi = *hi_it;
  // What cv::Mat's (disp - lo) / range + 1e-3 evaluates to: one scale and
  // one shift, in float.
  const float alpha = static_cast<float>(1 / std::max(1e-6, hi - lo));
  const float beta = static_cast<float>(-lo / std::max(1e-6, hi - lo) + 1e-3);
  for (float& d : disp) d = d * alpha + beta;
  return disp;
}

void ComputeVisibleVertexMask(const float* disparity,
                              int width,
                              int height,
                              double alpha_scale,
                              double alpha_threshold,
                              uint8_t* mask) {
  // exp(-a g) > t  <=>  g < -log(t) / a.
  const double threshold = -std::log(alpha_threshold) / alpha_scale;
  auto at = [&](int r, int c) {
    r = std::clamp(r, 0, height - 1);
    c = std::clamp(c, 0, width - 1);
    return disparity[static_cast<size_t>(r) * width + c];
  };
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const float gx = ((at(r - 1, c + 1) - at(r - 1, c - 1)) +
                        2 * (at(r, c + 1) - at(r, c - 1)) +
                        (at(r + 1, c + 1) - at(r + 1, c - 1))) *
                       0.125f;
      const float gy = ((at(r + 1, c - 1) - at(r - 1, c - 1)) +
                        2 * (at(r + 1, c) - at(r - 1, c)) +
                        (at(r + 1, c + 1) - at(r - 1, c + 1))) *
                       0.125f;
      const double g = std::sqrt(static_cast<double>(gx) * gx +
                                 static_cast<double>(gy) * gy);
      const float d = disparity[static_cast<size_t>(r) * width + c];
      mask[static_cast<size_t>(r) * width + c] =
          (std::isfinite(d) && g < threshold) ? 255 : 0;
    }
  }
}

std::vector<float> DisparityToDepthValues(const std::vector<float>& disparity) {
  std::vector<float> depth(disparity.size());
  for (size_t k = 0; k < disparity.size(); ++k)
    depth[k] = (std::isfinite(disparity[k]) && disparity[k] > 0)
                   ? 1.0f / disparity[k]
                   : 0.0f;
  return depth;
}

}  // namespace l2m
