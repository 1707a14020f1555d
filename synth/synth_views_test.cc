#include "synth/synth_views.h"

#include "l2m_core/util/file.h"
#include "synth/npy.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdlib>
#include <filesystem>

namespace l2m {
namespace {

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void WriteTexturedPhoto(const std::string& path, int w, int h, unsigned seed) {
  cv::Mat noise(h / 8, w / 8, CV_8UC3);
  cv::RNG(seed).fill(noise, cv::RNG::UNIFORM, 0, 256);
  cv::Mat image;
  cv::resize(noise, image, cv::Size(w, h), 0, 0, cv::INTER_CUBIC);
  cv::imwrite(path, image);
}

TEST(SynthViews, BadInputsGiveClearErrors) {
  test::TempDir dir;
  LiftingOptions options;
  options.size = 64;
  WriteFileAtomic(dir.File("corrupt.jpg"), "\xff\xd8 definitely not a jpeg");
  std::string error = ErrorOf(
      [&] { LoadSourcePhoto(dir.File("corrupt.jpg"), "", options, 0); });
  EXPECT_NE(error.find("corrupt.jpg"), std::string::npos) << error;
  EXPECT_NE(error.find("corrupt"), std::string::npos) << error;

  WriteTexturedPhoto(dir.File("photo.png"), 80, 60, 1);
  WriteNpy(dir.File("photo.npy"), cv::Mat(50, 80, CV_32F, cv::Scalar(1)));
  error = ErrorOf([&] {
    LoadSourcePhoto(dir.File("photo.png"), dir.File("photo.npy"), options, 0);
  });
  EXPECT_NE(error.find("photo.npy"), std::string::npos) << error;
  EXPECT_NE(error.find("80x50"), std::string::npos) << error;
  EXPECT_NE(error.find("80x60"), std::string::npos) << error;

  WriteFileAtomic(dir.File("bad.npy"), "\x93NUMPY garbage");
  error = ErrorOf([&] {
    LoadSourcePhoto(dir.File("photo.png"), dir.File("bad.npy"), options, 0);
  });
  EXPECT_NE(error.find("bad.npy"), std::string::npos) << error;

  WriteFileAtomic(dir.File("bad.png"), "PNG? no");
  error = ErrorOf([&] {
    LoadSourcePhoto(dir.File("photo.png"), dir.File("bad.png"), options, 0);
  });
  EXPECT_NE(error.find("bad.png"), std::string::npos) << error;

  WriteNpy(dir.File("nan.npy"), cv::Mat(60, 80, CV_32F, cv::Scalar(NAN)));
  error = ErrorOf([&] {
    LoadSourcePhoto(dir.File("photo.png"), dir.File("nan.npy"), options, 0);
  });
  EXPECT_NE(error.find("nan.npy"), std::string::npos) << error;

  error = ErrorOf([&] { FindDisparityFile(dir.path(), "missing"); });
  EXPECT_NE(error.find("missing"), std::string::npos) << error;
}

TEST(SynthViews, PipelineWritesAllViewsShardsAndResumes) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.File("photos"));
  std::filesystem::create_directories(dir.File("disp"));
  WriteTexturedPhoto(dir.File("photos/a.jpg"), 120, 90, 1);
  WriteTexturedPhoto(dir.File("photos/b.png"), 90, 120, 2);
  // 16-bit PNG disparity for a (as Depth Anything V2 writes); b procedural.
  cv::Mat disp16(90, 120, CV_16U);
  for (int r = 0; r < 90; ++r)
    for (int c = 0; c < 120; ++c)
      disp16.at<uint16_t>(r, c) = static_cast<uint16_t>(20000 + 300 * r);
  cv::imwrite(dir.File("disp/a.png"), disp16);
  ViewsOptions options;
  options.lifting.size = 64;
  options.num_views = 3;
  options.relight = "independent";
  options.sky = true;
  const std::string out = dir.File("out");
  // Disparity folder given but b has none: a clear error naming b.
  const std::string error = ErrorOf([&] {
    RunViewsPipeline(dir.File("photos"), dir.File("disp"), out, options);
  });
  EXPECT_NE(error.find("'b'"), std::string::npos) << error;
  cv::imwrite(dir.File("disp/b.png"), disp16.t());
  EXPECT_EQ(
      RunViewsPipeline(dir.File("photos"), dir.File("disp"), out, options), 6);
  const std::vector<std::string> names = ListPairs(out);
  ASSERT_EQ(names.size(), 6u);
  EXPECT_EQ(names[0], "a_00");
  EXPECT_EQ(names[5], "b_02");
  // Views differ (no overwriting) and the files follow the reference layout.
  const cv::Mat e0 = ReadNpy(out + "/ext/a_00.png.npy");
  const cv::Mat e1 = ReadNpy(out + "/ext/a_01.png.npy");
  EXPECT_GT(cv::norm(e0, e1), 0.1);
  for (const std::string f : {"/image1/a_01.png",
                              "/image2/a_01.png",
                              "/depth1/a_01.npy",
                              "/depth2/a_01.png.npy",
                              "/cams/a_01.npy",
                              "/warp/a_01.npy",
                              "/warp_back/a_01.npy",
                              "/debug/a_01.png"})
    EXPECT_TRUE(FileExists(out + f)) << f;
  const cv::Mat K = ReadNpy(out + "/cams/a_00.npy");
  EXPECT_EQ(K.at<float>(0, 2), 32);
  EXPECT_GE(K.at<float>(0, 0), 0.45 * 64);
  EXPECT_LT(K.at<float>(0, 0), 0.75 * 64);

  ShardReader shard(out + "/shards/shard_00000.l2ms");
  ASSERT_EQ(shard.NumRecords(), 6);
  EXPECT_EQ(shard.Record(4)["name"], "b_01");
  const cv::Mat depth2 = shard.ReadTensor(4, "depth2");
  EXPECT_EQ(
      cv::norm(depth2, ReadNpy(out + "/depth2/b_01.png.npy"), cv::NORM_INF), 0);
  const cv::Mat image1 = shard.ReadTensor(4, "image1");
  EXPECT_EQ(
      cv::norm(image1, cv::imread(out + "/image1/b_01.png"), cv::NORM_INF), 0);
  EXPECT_EQ(shard.ReadTensor(4, "warp12").type(), CV_32FC2);

  // The pair read back reproduces its GT warp.
  const SynthPair pair = ReadPairFolders(out, "a_02");
  const GtWarp gt = ComputeGtWarp(pair.depth1,
                                  pair.camera1,
                                  pair.depth2,
                                  pair.camera2,
                                  pair.cam2_from_cam1);
  const cv::Mat warp = ReadNpy(out + "/warp/a_02.npy");
  EXPECT_EQ(cv::countNonZero(gt.valid),
            cv::countNonZero(warp.reshape(1, 0) == warp.reshape(1, 0)) / 2);

  // Resume: nothing is redone.
  const auto stamp =
      std::filesystem::last_write_time(out + "/shards/shard_00000.l2ms");
  EXPECT_EQ(
      RunViewsPipeline(dir.File("photos"), dir.File("disp"), out, options), 0);
  EXPECT_EQ(std::filesystem::last_write_time(out + "/shards/shard_00000.l2ms"),
            stamp);
}

// Real depth: the rendered views are consistent with their GT.
void CheckRealPair(const std::string& image,
                   const std::string& depth,
                   LiftingOptions lifting,
                   double min_covisibility) {
  lifting.size = 256;
  const SourcePhoto photo = LoadSourcePhoto(image, depth, lifting, 0);
  ViewsOptions options;
  options.lifting = lifting;
  options.num_views = 2;
  const char* debug_dir = std::getenv("L2M_SYNTH_DEBUG_DIR");  // For a person.
  for (const SynthPair& pair : MakePairs(photo, "real", options)) {
    if (debug_dir)
      WritePairFolders(
          debug_dir,
          [&] {
            SynthPair named = pair;
            named.name = std::filesystem::path(image).stem().string() +
                         pair.name.substr(4);
            return named;
          }(),
          true,
          40);
    EXPECT_GT(pair.warp12.covisibility, min_covisibility) << image;
    EXPECT_GT(pair.warp21.covisibility, min_covisibility) << image;
    // Photometric check: image1(p) ~ image2(warp(p)) (view 2 is rendered from
    // view 1, so only interpolation differs).
    cv::Mat map = pair.warp12.warp - cv::Scalar(0.5, 0.5);
    cv::Mat sampled;
    cv::remap(pair.image2, sampled, map, cv::Mat(), cv::INTER_LINEAR);
    cv::Mat diff;
    cv::absdiff(sampled, pair.image1, diff);
    const double mean = cv::mean(diff, pair.warp12.valid)[1];
    EXPECT_LT(mean, 6.0) << image;
    // Forward-backward cycle.
    int checked = 0, good = 0;
    for (int r = 0; r < 256; ++r)
      for (int c = 0; c < 256; ++c) {
        if (!pair.warp12.valid.at<uint8_t>(r, c)) continue;
        const cv::Vec2f q = pair.warp12.warp.at<cv::Vec2f>(r, c);
        const cv::Vec2f p =
            pair.warp21.warp.at<cv::Vec2f>(int(q[1]), int(q[0]));
        if (!pair.warp21.valid.at<uint8_t>(int(q[1]), int(q[0]))) continue;
        ++checked;
        good += std::hypot(p[0] - c - 0.5, p[1] - r - 0.5) < 1.5;
      }
    EXPECT_GT(good, 0.97 * checked) << image;
  }
}

TEST(SynthViews, RealDepthSamples) {
  L2M_REQUIRE_SHARED(shared);
  const std::string base = shared + "/data/rgbd_depth_samples/";
  LiftingOptions disparity;
  CheckRealPair(base + "middlebury_debian/motorcycle_left.png",
                base + "middlebury_debian/motorcycle_disp.npz",
                disparity,
                0.15);
  disparity.invalid_value = 0;
  CheckRealPair(base + "middlebury_debian/aloeL.jpg",
                base + "middlebury_debian/aloeGT.png",
                disparity,
                0.15);
  LiftingOptions depth;
  depth.input_kind = DepthInputKind::kDepth;
  depth.invalid_value = 0;
  depth.input_scale = 0.001;
  CheckRealPair(base + "open3d_rgbd/color/00000.jpg",
                base + "open3d_rgbd/depth/00000.png",
                depth,
                0.15);
  depth.input_scale = 1.0 / 5000;
  CheckRealPair(base + "open3d_rgbd/other_formats/TUM_color.png",
                base + "open3d_rgbd/other_formats/TUM_depth.png",
                depth,
                0.15);
}

}  // namespace
}  // namespace l2m
