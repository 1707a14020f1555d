// The cv::Mat lifting helpers are thin wrappers of / twins to the
// OpenCV-free ones in disparity.h (used by the on-the-fly training pairs).

#include "synth/disparity.h"
#include "synth/lifting.h"

#include <gtest/gtest.h>

namespace l2m {
namespace {

TEST(LiftingCvFree, ProceduralDisparityAndMaskAgreeWithTheCvVersions) {
  const int w = 96, h = 72;
  for (uint64_t seed : {1, 2, 3}) {
    const cv::Mat cv_disp = ProceduralDisparity(w, h, seed);
    const std::vector<float> disp = ProceduralDisparityValues(w, h, seed);
    ASSERT_TRUE(cv_disp.isContinuous());
    for (int k = 0; k < w * h; ++k)
      ASSERT_NEAR(cv_disp.ptr<float>()[k], disp[k], 2e-7f * disp[k] + 1e-9f);
    LiftingOptions options;
    const cv::Mat cv_mask = VisibleVertexMask(cv_disp, options);
    std::vector<uint8_t> mask(w * h);
    ComputeVisibleVertexMask(cv_disp.ptr<float>(),
                             w,
                             h,
                             options.alpha_scale,
                             options.alpha_threshold,
                             mask.data());
    int differ = 0;
    for (int k = 0; k < w * h; ++k)
      differ += cv_mask.ptr<uint8_t>()[k] != mask[k];
    // Only a gradient within rounding of the threshold could differ.
    EXPECT_LE(differ, 1) << "seed " << seed;
  }
}

}  // namespace
}  // namespace l2m
