// The OpenCV-free disparity helpers (disparity.h); their agreement with the
// cv::Mat versions of lifting.h is checked in synth_test (lifting_cv_test.cc).

#include "synth/disparity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace l2m {
namespace {

TEST(ProceduralDisparity, NormalisedAndDeterministic) {
  const std::vector<float> a = ProceduralDisparityValues(80, 60, 7);
  EXPECT_EQ(a, ProceduralDisparityValues(80, 60, 7));
  EXPECT_NE(a, ProceduralDisparityValues(80, 60, 8));
  const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
  EXPECT_NEAR(*lo, 0.001f, 1e-6f);
  EXPECT_NEAR(*hi, 1.001f, 1e-6f);
  const std::vector<float> depth = DisparityToDepthValues(a);
  for (size_t k = 0; k < a.size(); ++k) EXPECT_FLOAT_EQ(depth[k], 1 / a[k]);
}

TEST(VisibleVertexMask, SobelThresholdAsTheReference) {
  const int w = 12, h = 8;
  std::vector<float> disp(w * h, 0.5f);
  // A step of 0.5 between columns 5 and 6: |Sobel| = 0.5 * 4 / 8 = 0.25 >
  // log(10) / 10 = 0.23 on both sides of it; a ramp of 0.01 per pixel
  // (|Sobel| = 0.01) stays visible.
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c)
      disp[r * w + c] = (c >= 6 ? 1.0f : 0.5f) + 0.01f * r;
  disp[0] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> mask(w * h);
  ComputeVisibleVertexMask(disp.data(), w, h, 10, 0.1, mask.data());
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      // The NaN's Sobel neighbourhood is NaN too (as OpenCV's).
      const bool expected = !(c == 5 || c == 6) && !(r <= 1 && c <= 1);
      EXPECT_EQ(mask[r * w + c], expected ? 255 : 0) << r << "," << c;
    }
}

}  // namespace
}  // namespace l2m
