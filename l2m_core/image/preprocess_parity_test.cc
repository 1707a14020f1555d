// Parity of the matcher's input transform with the reference's preprocessed
// tensors (`in.coarse` / `in.upsample` of roma_parity run_main and run_norm).
// OpenCV is used only to decode the JPEGs (and to show how far its own
// resizers are from PIL's).

#include "l2m_core/image/preprocess.h"
#include "l2m_core/image/resize.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <fstream>

namespace l2m {
namespace {

// Decodes like the reference: libjpeg-turbo via imread, BGR -> RGB.
cv::Mat ReadRgb(const std::string& path) {
  const cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  cv::Mat rgb;
  if (!bgr.empty()) cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

torch::Tensor AsTensor(const cv::Mat& rgb) {
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
}

std::string Md5OfBuffer(const cv::Mat& rgb) {
  test::TempDir tmp;
  const std::string path = tmp.File("rgb.raw");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(rgb.data),
             rgb.total() * rgb.elemSize());
  std::string out;
  EXPECT_EQ(0, test::RunCommand("md5sum " + path, &out));
  return out.substr(0, 32);
}

struct Case {
  const char* run;
  const char* tensor;
  int h, w;
  bool normalize;
};

class PreprocessParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string shared = test::SharedDir();
    if (shared.empty()) GTEST_SKIP() << "../shared not found";
    dir_ = shared + "/fixtures/roma_parity";
    a_ = ReadRgb(dir_ + "/sacre_coeur_A.jpg");
    b_ = ReadRgb(dir_ + "/sacre_coeur_B.jpg");
    ASSERT_FALSE(a_.empty());
    ASSERT_FALSE(b_.empty());
  }
  std::string dir_;
  cv::Mat a_, b_;
};

TEST_F(PreprocessParity, DecodedJpegIsWhatPilDecodes) {
  // stats.json["jpeg"]: md5 of PIL's decoded RGB uint8 buffers.
  EXPECT_EQ(a_.rows, 480);
  EXPECT_EQ(a_.cols, 640);
  EXPECT_EQ(b_.rows, 640);
  EXPECT_EQ(b_.cols, 618);
  EXPECT_EQ(Md5OfBuffer(a_), "8829d7f707ebbbb0c0faa41d0288fb30");
  EXPECT_EQ(Md5OfBuffer(b_), "161164394fc765894914f2dd35298af5");
}

TEST_F(PreprocessParity, MatchesReferenceInputs) {
  const std::vector<Case> cases = {{"run_main", "in.coarse", 56, 112, false},
                                   {"run_main", "in.upsample", 80, 160, false},
                                   {"run_norm", "in.coarse", 56, 112, true},
                                   {"run_norm", "in.upsample", 80, 160, true}};
  for (const Case& c : cases) {
    const test::TensorFixture fixture =
        test::TensorFixture::Load(dir_ + "/" + c.run);
    const torch::Tensor ref = fixture.Get(c.tensor);  // (2, 3, h, w)
    ASSERT_EQ(ref.sizes(), (std::vector<int64_t>{2, 3, c.h, c.w}));
    const torch::Tensor ours =
        torch::cat({PreprocessForMatcher(AsTensor(a_), c.h, c.w, c.normalize),
                    PreprocessForMatcher(AsTensor(b_), c.h, c.w, c.normalize)});
    const double max_err = (ours - ref).abs().max().item<double>();
    const int64_t n_diff = (ours != ref).sum().item<int64_t>();
    std::cout << "[ parity ] " << c.run << " " << c.tensor
              << ": max |ours - ref| = " << max_err << " (" << max_err * 255
              << "/255), differing elements " << n_diff << " of " << ref.numel()
              << std::endl;
    // Rounding-level goal: at most one uint8 level (and in practice 0).
    const double level = c.normalize ? 1.0 / (255 * 0.224) : 1.0 / 255;
    EXPECT_LE(max_err, level * 1.0001) << c.run << " " << c.tensor;
    if (!c.normalize) {
      // in.coarse * 255 is exactly PIL's uint8 result: compare the integers.
      const torch::Tensor ref_u8 = (ref * 255).round().to(torch::kUInt8);
      const torch::Tensor ours_u8 =
          torch::stack({ResizeBicubicPil(AsTensor(a_), c.h, c.w),
                        ResizeBicubicPil(AsTensor(b_), c.h, c.w)})
              .permute({0, 3, 1, 2});
      EXPECT_TRUE(torch::equal(ours_u8, ref_u8)) << c.tensor;
      EXPECT_EQ(max_err, 0.0) << "float32 /255 should be bit-exact";
    } else {
      EXPECT_LE(max_err, 1e-6);
    }
  }
}

TEST_F(PreprocessParity, OpenCvResizersAreFarFromPil) {
  // Informational: why a PIL-exact resize is needed (MANIFEST: up to 134/255
  // for INTER_CUBIC and 19/255 for INTER_AREA at 56x112).
  const test::TensorFixture fixture =
      test::TensorFixture::Load(dir_ + "/run_main");
  for (const char* name : {"in.coarse", "in.upsample"}) {
    const torch::Tensor ref =
        (fixture.Get(name) * 255).round().to(torch::kInt32);
    const int h = static_cast<int>(ref.size(2)),
              w = static_cast<int>(ref.size(3));
    for (const auto& [interp, label] :
         {std::pair{cv::INTER_CUBIC, "INTER_CUBIC"},
          std::pair{cv::INTER_AREA, "INTER_AREA"},
          std::pair{cv::INTER_LINEAR, "INTER_LINEAR"}}) {
      int max_diff = 0;
      for (int i = 0; i < 2; ++i) {
        cv::Mat resized;
        cv::resize(i == 0 ? a_ : b_, resized, cv::Size(w, h), 0, 0, interp);
        const torch::Tensor t =
            AsTensor(resized).permute({2, 0, 1}).to(torch::kInt32);
        max_diff = std::max(max_diff, (t - ref[i]).abs().max().item<int>());
      }
      std::cout << "[ info   ] OpenCV " << label << " vs PIL at " << h << "x"
                << w << ": max diff " << max_diff << "/255" << std::endl;
    }
  }
}

}  // namespace
}  // namespace l2m
