#include "synth/npy.h"

#include "l2m_core/util/file.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>

namespace l2m {
namespace {

TEST(Npy, RoundTripsFloatAndMultiChannel) {
  test::TempDir dir;
  cv::Mat a(3, 5, CV_32F);
  cv::randu(a, -1, 1);
  WriteNpy(dir.File("a.npy"), a);
  const cv::Mat b = ReadNpy(dir.File("a.npy"));
  ASSERT_EQ(b.type(), CV_32F);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0);
  // Data starts 64-byte aligned, as numpy writes it.
  EXPECT_EQ(ReadBinaryFile(dir.File("a.npy")).size() % 64, (15 * 4) % 64);

  cv::Mat c(4, 2, CV_32FC2, cv::Scalar(1.5, -2));
  const cv::Mat d = DecodeNpy(EncodeNpy(c), "mem");
  EXPECT_EQ(d.type(), CV_32FC2);
  EXPECT_EQ(cv::norm(c, d, cv::NORM_INF), 0);
}

TEST(Npy, CorruptFilesNameTheFile) {
  test::TempDir dir;
  WriteFileAtomic(dir.File("bad.npy"), "not numpy at all");
  try {
    ReadNpy(dir.File("bad.npy"));
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos);
  }
  cv::Mat a(10, 10, CV_32F, cv::Scalar(1));
  std::string bytes = EncodeNpy(a);
  bytes.resize(bytes.size() - 8);
  EXPECT_THROW(DecodeNpy(bytes, "short.npy"), std::runtime_error);
}

TEST(Npy, ReadsMiddleburyNpz) {
  L2M_REQUIRE_SHARED(shared);
  const cv::Mat disp =
      ReadNpz(shared +
              "/data/rgbd_depth_samples/middlebury_debian/motorcycle_disp.npz");
  EXPECT_EQ(disp.rows, 500);
  EXPECT_EQ(disp.cols, 741);
  EXPECT_EQ(disp.type(), CV_32F);
}

}  // namespace
}  // namespace l2m
