// libjpeg decoding feeds `l2m bench`'s full path on machines without OpenCV:
// decoded and resized, the fixture photos must give the reference's input
// tensors exactly (PIL decodes with libjpeg too).

#include "l2m_core/image/image_codec.h"

#include "l2m_core/image/preprocess.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace l2m {
namespace {

TEST(JpegDecode, FixturePhotosGiveTheReferenceInputs) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity";
  const test::TensorFixture run = test::TensorFixture::Load(dir + "/run_main");
  const at::Tensor& coarse = run.Get("in.coarse");  // (2, 3, h, w)
  const char* names[] = {"/sacre_coeur_A.jpg", "/sacre_coeur_B.jpg"};
  for (int i = 0; i < 2; ++i) {
    const RgbImage image = DecodeJpegFile(dir + names[i]);
    ASSERT_GT(image.width, 0);
    const at::Tensor x = PreprocessForMatcher(image.pixels.data(),
                                              image.height,
                                              image.width,
                                              coarse.size(2),
                                              coarse.size(3),
                                              false);
    EXPECT_EQ((x[0] - coarse[i]).abs().max().item<float>(), 0.0f) << names[i];
  }
}

TEST(ImageCodec, PngRoundTripIsExactAndJpegIsClose) {
  test::TempDir dir;
  RgbImage image;
  image.height = 23;
  image.width = 37;
  for (int r = 0; r < image.height; ++r)
    for (int c = 0; c < image.width; ++c)
      for (int ch = 0; ch < 3; ++ch)
        image.pixels.push_back(static_cast<uint8_t>(40 + 4 * r + 3 * c + ch));
  try {
    WritePngFile(dir.File("a.png"), image);
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << e.what();  // Built without libpng.
  }
  const RgbImage png = DecodeImageFile(dir.File("a.png"));
  EXPECT_EQ(png.width, image.width);
  EXPECT_EQ(png.height, image.height);
  EXPECT_EQ(png.pixels, image.pixels);
  WriteJpegFile(dir.File("a.jpg"), image, 98);
  const RgbImage jpg = DecodeImageFile(dir.File("a.jpg"));
  ASSERT_EQ(jpg.pixels.size(), image.pixels.size());
  double error = 0;
  for (size_t k = 0; k < jpg.pixels.size(); ++k)
    error += std::abs(jpg.pixels[k] - image.pixels[k]);
  // A smooth ramp at quality 98: chroma subsampling costs a few levels.
  EXPECT_LT(error / jpg.pixels.size(), 3.0);
  std::ofstream(dir.File("text.png")) << "not an image";
  try {
    DecodeImageFile(dir.File("text.png"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("text.png"), std::string::npos);
  }
}

// Into caller memory (the benchmark's pinned upload buffers) the pixels are
// the plain decode's, for a height that is not a multiple of the 16 rows
// read per call; a destination that throws stops the decode cleanly.
TEST(JpegDecode, IntoCallerMemoryEqualsDecode) {
  test::TempDir dir;
  RgbImage image;
  image.height = 37;
  image.width = 53;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      image.pixels.push_back(static_cast<uint8_t>(5 * x));
      image.pixels.push_back(static_cast<uint8_t>(7 * y));
      image.pixels.push_back(static_cast<uint8_t>((x * y) % 251));
    }
  }
  const std::string path = dir.File("gradient.jpg");
  try {
    WriteJpegFile(path, image);
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << e.what();  // Built without libjpeg.
  }
  const RgbImage decoded = DecodeJpegFile(path);
  std::vector<uint8_t> buffer;
  int h = 0, w = 0;
  DecodeJpegFileInto(path, [&](int height, int width) {
    h = height;
    w = width;
    buffer.assign(static_cast<size_t>(height) * width * 3 + 7, 0xAB);
    return buffer.data();
  });
  EXPECT_EQ(h, 37);
  EXPECT_EQ(w, 53);
  ASSERT_EQ(decoded.pixels.size() + 7, buffer.size());
  EXPECT_TRUE(
      std::equal(decoded.pixels.begin(), decoded.pixels.end(), buffer.begin()));
  // Nothing written past the image.
  for (size_t i = decoded.pixels.size(); i < buffer.size(); ++i) {
    EXPECT_EQ(buffer[i], 0xAB);
  }
  EXPECT_THROW(DecodeJpegFileInto(path,
                                  [](int, int) -> uint8_t* {
                                    throw std::runtime_error("no room");
                                  }),
               std::runtime_error);
}

TEST(JpegDecode, BadFilesAreNamed) {
  test::TempDir dir;
  try {
    DecodeJpegFile(dir.File("missing.jpg"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jpg"), std::string::npos);
  }
  std::ofstream(dir.File("bad.jpg")) << "\xff\xd8\xff garbage";
  try {
    DecodeJpegFile(dir.File("bad.jpg"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jpg"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace l2m
