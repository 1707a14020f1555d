#include "l2m_core/image/resize.h"

#include "l2m_core/image/preprocess.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

namespace l2m {
namespace {

std::vector<uint8_t> RandomImage(int h, int w, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> img(static_cast<size_t>(h) * w * c);
  for (auto& v : img) v = static_cast<uint8_t>(dist(rng));
  return img;
}

// Independent double-precision Keys(a=-0.5) antialiased resampling of one
// row, rounded once at the end: what the fixed-point code approximates.
std::vector<double> ReferenceRow(const std::vector<uint8_t>& row, int out) {
  const int in = static_cast<int>(row.size());
  const double scale = static_cast<double>(in) / out;
  const double fs = std::max(1.0, scale);
  auto keys = [](double x) {
    x = std::abs(x);
    if (x < 1) return 1.5 * x * x * x - 2.5 * x * x + 1;
    if (x < 2) return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
    return 0.0;
  };
  std::vector<double> res(out);
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    double sw = 0, s = 0;
    for (int j = 0; j < in; ++j) {
      const double w = keys((j + 0.5 - center) / fs);
      sw += w;
      s += w * row[j];
    }
    res[i] = s / sw;
  }
  return res;
}

TEST(ResizeBicubicPil, TapsSumToOneAndAreSymmetric) {
  // 640 -> 112 (the coarse width of the fixture): antialiased support.
  const auto taps = internal::ComputePilBicubicTaps(640, 112);
  EXPECT_EQ(taps.taps_per_output,
            2 * static_cast<int>(std::ceil(2 * 640.0 / 112)) + 1);
  for (int i = 0; i < 112; ++i) {
    int64_t sum = 0;
    for (int k = 0; k < taps.count[i]; ++k) {
      sum += taps.coeffs[i * taps.taps_per_output + k];
    }
    EXPECT_NEAR(sum, 1 << 22, 16) << i;
  }
  // Downscale by exactly 2: interior taps are symmetric around the center.
  const auto half = internal::ComputePilBicubicTaps(64, 32);
  const int i = 10;
  const int n = half.count[i];
  EXPECT_EQ(n, 8);  // support 2*2 = 4 on each side of center 21
  EXPECT_EQ(half.first[i], 17);
  for (int k = 0; k < n; ++k) {
    EXPECT_EQ(half.coeffs[i * half.taps_per_output + k],
              half.coeffs[i * half.taps_per_output + n - 1 - k]);
  }
}

TEST(ResizeBicubicPil, SameSizeIsCopy) {
  const auto img = RandomImage(7, 9, 3, 1);
  EXPECT_EQ(ResizeBicubicPil(img.data(), 7, 9, 3, 7, 9), img);
}

TEST(ResizeBicubicPil, ConstantStaysConstant) {
  std::vector<uint8_t> img(33 * 47 * 3, 0);
  for (size_t i = 0; i < img.size(); ++i)
    img[i] = (i % 3 == 0) ? 0 : (i % 3 == 1 ? 137 : 255);
  for (auto [h, w] :
       {std::pair{11, 13}, std::pair{80, 160}, std::pair{33, 5}}) {
    const auto out = ResizeBicubicPil(img.data(), 33, 47, 3, h, w);
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(out[i], (i % 3 == 0) ? 0 : (i % 3 == 1 ? 137 : 255))
          << h << "x" << w;
    }
  }
}

TEST(ResizeBicubicPil, MatchesDoublePrecisionKeysOnOneRow) {
  // A single row only runs the horizontal pass: the fixed-point result must be
  // the double-precision Keys a=-0.5 result up to the coefficient rounding.
  // a=-0.75 or a missing antialiasing would be off by many levels.
  for (auto [in, out] :
       {std::pair{640, 112}, std::pair{100, 37}, std::pair{20, 53}}) {
    const auto row = RandomImage(1, in, 1, in + out);
    const auto got = ResizeBicubicPil(row.data(), 1, in, 1, 1, out);
    const auto ref = ReferenceRow(row, out);
    int exact = 0;
    for (int i = 0; i < out; ++i) {
      const double clamped = std::min(255.0, std::max(0.0, ref[i]));
      EXPECT_LE(std::abs(got[i] - clamped), 0.5 + 1e-3)
          << in << "->" << out << " @" << i;
      exact += got[i] == static_cast<int>(std::floor(clamped + 0.5));
    }
    EXPECT_GE(exact, out - 2) << in << "->" << out;
  }
}

TEST(ResizeBicubicPil, ChannelsAreIndependent) {
  const int h = 23, w = 31, c = 3;
  const auto img = RandomImage(h, w, c, 7);
  const auto out = ResizeBicubicPil(img.data(), h, w, c, 9, 40);
  for (int ch = 0; ch < c; ++ch) {
    std::vector<uint8_t> plane(h * w);
    for (int i = 0; i < h * w; ++i) plane[i] = img[i * c + ch];
    const auto p = ResizeBicubicPil(plane.data(), h, w, 1, 9, 40);
    for (int i = 0; i < 9 * 40; ++i) ASSERT_EQ(p[i], out[i * c + ch]);
  }
}

TEST(ResizeBicubicPil, TensorOverloadAndPreprocess) {
  const auto img = RandomImage(30, 40, 3, 3);
  torch::Tensor t = torch::from_blob(
      const_cast<uint8_t*>(img.data()), {30, 40, 3}, torch::kUInt8);
  const auto raw = ResizeBicubicPil(img.data(), 30, 40, 3, 12, 20);
  const torch::Tensor r = ResizeBicubicPil(t, 12, 20);
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{12, 20, 3}));
  EXPECT_EQ(0, std::memcmp(r.data_ptr<uint8_t>(), raw.data(), raw.size()));

  const torch::Tensor x = PreprocessForMatcher(t, 12, 20, false);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{1, 3, 12, 20}));
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(
      torch::equal(x[0], r.permute({2, 0, 1}).to(torch::kFloat32) / 255));
  const torch::Tensor xn =
      PreprocessForMatcher(img.data(), 30, 40, 12, 20, true);
  const torch::Tensor mean =
      torch::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  const torch::Tensor std =
      torch::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  EXPECT_TRUE(torch::allclose(xn[0], (x[0] - mean) / std, 1e-6, 1e-6));
  // A non-contiguous (strided) view works too.
  const torch::Tensor flipped = t.flip({1}).flip({1});
  EXPECT_TRUE(torch::equal(
      ResizeBicubicPil(flipped.permute({1, 0, 2}).permute({1, 0, 2}), 12, 20),
      r));
}

}  // namespace
}  // namespace l2m

namespace l2m {
namespace {

// Pillow's BILINEAR (triangle filter, antialiased when shrinking): checked
// bit-exact against Pillow 9.4 by hand on random images and a photo; here the
// properties that need no Pillow.
TEST(ResizePilBilinear, ConstantStaysConstantAndRampsStayLinear) {
  std::vector<uint8_t> flat(41 * 29 * 3, 77);
  std::vector<uint8_t> out(17 * 50 * 3);
  ResizePil(flat.data(), 41, 29, 3, 17, 50, PilFilter::kBilinear, out.data());
  for (uint8_t v : out) ASSERT_EQ(v, 77);
  // A horizontal ramp 0, 2, 4, ... upsampled 2x: interior samples fall
  // halfway between inputs (odd values), within rounding.
  std::vector<uint8_t> ramp(1 * 64);
  for (int x = 0; x < 64; ++x) ramp[x] = static_cast<uint8_t>(2 * x);
  std::vector<uint8_t> up(128);
  ResizePil(ramp.data(), 1, 64, 1, 1, 128, PilFilter::kBilinear, up.data());
  for (int x = 2; x < 126; ++x) {
    const double expected = 2.0 * ((x + 0.5) / 2.0 - 0.5);
    ASSERT_NEAR(up[x], expected, 0.5 + 1e-9) << x;
  }
  // Bicubic and bilinear differ on the same input (the filter is honoured).
  std::vector<uint8_t> noise(32 * 32);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = (i * 7919) % 251;
  std::vector<uint8_t> a(13 * 13), b(13 * 13);
  ResizePil(noise.data(), 32, 32, 1, 13, 13, PilFilter::kBilinear, a.data());
  ResizePil(noise.data(), 32, 32, 1, 13, 13, PilFilter::kBicubic, b.data());
  EXPECT_NE(a, b);
}

// On CUDA (where l2m has its kernels) the matcher's preprocessing gives the
// very same bits as on the CPU: down- and upscaling, one axis unchanged,
// with and without normalisation. Skips without a GPU (CI).
TEST(PreprocessForMatcher, CudaIsBitExactWithCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const int src_h = 257, src_w = 383;
  const std::vector<uint8_t> img = RandomImage(src_h, src_w, 3, 11);
  const at::Tensor cpu =
      torch::from_blob(
          const_cast<uint8_t*>(img.data()), {src_h, src_w, 3}, torch::kUInt8)
          .clone();
  const at::Tensor gpu = cpu.cuda();
  const std::vector<std::pair<int, int>> sizes = {
      {56, 112}, {200, 300}, {600, 900}, {257, 120}, {90, 383}, {257, 383}};
  for (const auto& [h, w] : sizes) {
    for (bool normalize : {false, true}) {
      const at::Tensor want = PreprocessForMatcher(cpu, h, w, normalize);
      const at::Tensor got = PreprocessForMatcher(gpu, h, w, normalize);
      ASSERT_TRUE(got.is_cuda());
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::equal(got.cpu(), want))
          << h << "x" << w << " normalize " << normalize << ": max diff "
          << (got.cpu() - want).abs().max().item<double>();
    }
  }
}

}  // namespace
}  // namespace l2m
