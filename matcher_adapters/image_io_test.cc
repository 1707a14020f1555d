#include "matcher_adapters/image_io.h"

#include "matcher_adapters/test_images.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace l2m {
namespace {

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary);
  file << bytes;
}

// Expects LoadMatcherImage(path) to throw std::runtime_error whose message
// names the file and contains `what`.
void ExpectLoadError(const std::string& path, const std::string& what) {
  try {
    LoadMatcherImage(1, path);
    FAIL() << "expected an error for " << path;
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
    std::printf("[ message  ] %s\n", message.c_str());
  }
}

TEST(ImageIo, LoadsEightBitImages) {
  test::TempDir dir;
  const cv::Mat bgr = test::RandomTexture(64, 48, 1);
  ASSERT_TRUE(cv::imwrite(dir.File("a.png"), bgr));
  ASSERT_TRUE(cv::imwrite(dir.File("a.jpg"), bgr));
  cv::Mat grey;
  cv::extractChannel(bgr, grey, 0);
  ASSERT_TRUE(cv::imwrite(dir.File("grey.png"), grey));
  ASSERT_TRUE(cv::imwrite(dir.File("a.tif"), bgr));
  // Several scans, restart markers: the end-of-image check must walk them.
  ASSERT_TRUE(cv::imwrite(
      dir.File("progressive.jpg"), bgr, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  ASSERT_TRUE(cv::imwrite(
      dir.File("restarts.jpg"), bgr, {cv::IMWRITE_JPEG_RST_INTERVAL, 2}));

  const MatcherImage png = LoadMatcherImage(7, dir.File("a.png"));
  EXPECT_EQ(png.image_id, 7);
  EXPECT_EQ(png.path, dir.File("a.png"));
  EXPECT_EQ(png.bgr.type(), CV_8UC3);
  EXPECT_EQ(cv::norm(png.bgr, bgr, cv::NORM_INF), 0);
  for (const char* name :
       {"a.jpg", "grey.png", "a.tif", "progressive.jpg", "restarts.jpg"}) {
    const MatcherImage image = LoadMatcherImage(1, dir.File(name));
    EXPECT_EQ(image.bgr.type(), CV_8UC3) << name;
    EXPECT_EQ(image.bgr.size(), bgr.size()) << name;
    EXPECT_TRUE(IsSupportedImageDepth(dir.File(name))) << name;
    EXPECT_EQ(ImageBitDepth(dir.File(name)), 8) << name;
  }
}

TEST(ImageIo, MissingFile) {
  test::TempDir dir;
  ExpectLoadError(dir.File("nope.jpg"), "not found");
  EXPECT_THROW(IsSupportedImageDepth(dir.File("nope.jpg")), std::runtime_error);
  ExpectLoadError(dir.path(), "directory");
}

TEST(ImageIo, CorruptFiles) {
  test::TempDir dir;
  cv::RNG rng(3);
  std::string garbage(4000, '\0');
  for (char& c : garbage) c = static_cast<char>(rng.uniform(0, 256));
  WriteBytes(dir.File("garbage.png"), garbage);
  ExpectLoadError(dir.File("garbage.png"), "Cannot decode");
  // A JPEG signature followed by garbage.
  WriteBytes(dir.File("bad.jpg"), std::string("\xFF\xD8\xFF\xE0", 4) + garbage);
  ExpectLoadError(dir.File("bad.jpg"), "corrupt");
  // Truncated files: libjpeg would decode the first half and fill in grey.
  std::vector<uchar> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", test::RandomTexture(200, 150, 2), jpeg));
  WriteBytes(dir.File("truncated.jpg"),
             std::string(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));
  ExpectLoadError(dir.File("truncated.jpg"), "truncated");
  std::vector<uchar> png;
  ASSERT_TRUE(cv::imencode(".png", test::RandomTexture(200, 150, 2), png));
  WriteBytes(dir.File("truncated.png"),
             std::string(png.begin(), png.begin() + png.size() / 2));
  ExpectLoadError(dir.File("truncated.png"), "Cannot decode");
  WriteBytes(dir.File("empty.jpg"), "");
  ExpectLoadError(dir.File("empty.jpg"), "empty");
}

TEST(ImageIo, SixteenBitImagesAreRejected) {
  test::TempDir dir;
  cv::Mat deep(32, 40, CV_16UC3, cv::Scalar(1000, 20000, 65535));
  ASSERT_TRUE(cv::imwrite(dir.File("deep.png"), deep));
  cv::Mat deep_grey(32, 40, CV_16UC1, cv::Scalar(40000));
  ASSERT_TRUE(cv::imwrite(dir.File("deep_grey.png"), deep_grey));
  ASSERT_TRUE(cv::imwrite(dir.File("deep.tif"), deep));
  for (const char* name : {"deep.png", "deep_grey.png", "deep.tif"}) {
    const std::string path = dir.File(name);
    EXPECT_EQ(ImageBitDepth(path), 16) << name;
    std::string reason;
    EXPECT_FALSE(IsSupportedImageDepth(path, &reason)) << name;
    EXPECT_EQ(reason, "unsupported bit depth 16");
    ExpectLoadError(path, "unsupported bit depth 16");
  }
}

}  // namespace
}  // namespace l2m
