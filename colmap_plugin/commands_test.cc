// The `l2m match_pair` and `l2m vis_feats` commands end to end, through the
// built program: what they write, that it agrees with the reference where a
// fixture exists, and clear errors on bad input.

#include "colmap_plugin/match_visualization.h"
#include "l2m_core/model/config.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/weights/safetensors.h"
#include "matcher_adapters/test_images.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace l2m {
namespace {

std::string L2m() { return test::BinaryPath("colmap_plugin/l2m"); }

struct MatchLine {
  double x1, y1, x2, y2, score;
};

std::vector<MatchLine> ReadMatches(const std::string& path) {
  std::ifstream in(path);
  std::vector<MatchLine> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    MatchLine m{};
    s >> m.x1 >> m.y1 >> m.x2 >> m.y2 >> m.score;
    EXPECT_FALSE(s.fail()) << line;
    lines.push_back(m);
  }
  return lines;
}

TEST(MatchPair, L2mOnTheReferenceFixtureWritesItsCertaintyAndPictures) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity";
  test::TempDir out;
  std::string log;
  ASSERT_EQ(test::RunCommand(
                L2m() + " match_pair --image1 " + dir + "/sacre_coeur_A.jpg" +
                    " --image2 " + dir + "/sacre_coeur_B.jpg --output_path " +
                    out.path() + " --L2m.preset " + dir + "/config.json" +
                    " --L2m.weights " + dir + "/weights_matcher.pth" +
                    " --L2m.dino_weights " + dir + "/weights_dino.pth" +
                    " --L2m.num_samples 2000 --L2m.num_threads 2",
                &log),
            0)
      << log;
  // certainty.png is round(255 c) of the reference's final certainty (both
  // halves), except where the reference itself is ambiguous (MANIFEST).
  const test::TensorFixture run = test::TensorFixture::Load(dir + "/run_main");
  const at::Tensor cert = run.Get("final.certainty");
  const at::Tensor ambiguous = run.Get("final.ambiguous");
  const cv::Mat png =
      cv::imread(out.File("certainty.png"), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(png.type(), CV_8U);
  ASSERT_EQ(png.rows, cert.size(0));
  ASSERT_EQ(png.cols, cert.size(1));
  auto c = cert.accessor<float, 2>();
  auto a = ambiguous.accessor<uint8_t, 2>();
  int worst = 0;
  for (int r = 0; r < png.rows; ++r) {
    for (int col = 0; col < png.cols; ++col) {
      if (a[r][col]) continue;
      worst = std::max(worst,
                       std::abs(png.at<uint8_t>(r, col) -
                                int(std::lround(c[r][col] * 255))));
    }
  }
  EXPECT_LE(worst, 1);

  const cv::Mat warp = cv::imread(out.File("warp.png"));
  EXPECT_EQ(warp.rows, png.rows);
  EXPECT_EQ(warp.cols, png.cols);
  const cv::Mat plot = cv::imread(out.File("matches.png"));
  EXPECT_GT(plot.cols, plot.rows);
  const std::vector<MatchLine> matches = ReadMatches(out.File("matches.txt"));
  EXPECT_GT(matches.size(), 200u);
  const cv::Mat image_a = cv::imread(dir + "/sacre_coeur_A.jpg");
  for (const MatchLine& m : matches) {
    ASSERT_TRUE(m.x1 >= 0 && m.x1 <= image_a.cols && m.y1 >= 0 &&
                m.y1 <= image_a.rows);
    ASSERT_GE(m.score, 0.05);
  }
}

TEST(MatchPair, SiftWritesMatchesAndPlotOnly) {
  test::TempDir dir;
  const cv::Mat a = test::RandomTexture(360, 280, 5);
  cv::Mat b;
  // B is A moved 12 px right and 7 px down.
  const cv::Mat shift = (cv::Mat_<double>(2, 3) << 1, 0, 12, 0, 1, 7);
  cv::warpAffine(a, b, shift, a.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  cv::imwrite(dir.File("a.png"), a);
  cv::imwrite(dir.File("b.png"), b);
  std::string log;
  ASSERT_EQ(test::RunCommand(L2m() + " match_pair --Matcher.type sift" +
                                 " --image1 " + dir.File("a.png") +
                                 " --image2 " + dir.File("b.png") +
                                 " --output_path " + dir.File("out"),
                             &log),
            0)
      << log;
  const std::vector<MatchLine> matches =
      ReadMatches(dir.File("out/matches.txt"));
  ASSERT_GT(matches.size(), 50u);
  int good = 0;
  for (const MatchLine& m : matches) {
    good += std::hypot(m.x2 - m.x1 - 12, m.y2 - m.y1 - 7) < 1.5;
  }
  EXPECT_GT(good, 0.9 * matches.size());
  EXPECT_TRUE(std::filesystem::exists(dir.File("out/matches.png")));
  EXPECT_FALSE(std::filesystem::exists(dir.File("out/certainty.png")));
}

TEST(MatchPair, BadInputNamesTheProblem) {
  test::TempDir dir;
  std::string log;
  EXPECT_NE(test::RunCommand(L2m() + " match_pair --Matcher.type sift" +
                                 " --image1 " + dir.File("missing.jpg") +
                                 " --image2 " + dir.File("missing.jpg") +
                                 " --output_path " + dir.File("out"),
                             &log),
            0);
  EXPECT_NE(log.find("missing.jpg"), std::string::npos) << log;
  std::ofstream(dir.File("a.png")) << "not a png";
  EXPECT_NE(
      test::RunCommand(L2m() + " match_pair --image1 " + dir.File("a.png") +
                           " --image2 " + dir.File("a.png") +
                           " --output_path " + dir.File("out"),
                       &log),
      0);
  EXPECT_NE(log.find("a.png"), std::string::npos) << log;
}

TEST(MatchVisualization, WarpOfTheIdentityShowsTheOtherImage) {
  // With an identity warp and full certainty, the left half shows image 2 on
  // A's grid, and the right half image 1.
  const int h = 20, w = 30;
  cv::Mat one(h, w, CV_8UC3, cv::Scalar(10, 20, 30));
  cv::Mat two(h, w, CV_8UC3, cv::Scalar(200, 100, 50));
  cv::Mat warp(h, 2 * w, CV_32FC4), cert(h, 2 * w, CV_32F, cv::Scalar(1.0f));
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < 2 * w; ++c) {
      const float x = 2.0f * ((c % w) + 0.5f) / w - 1,
                  y = 2.0f * (r + 0.5f) / h - 1;
      warp.at<cv::Vec4f>(r, c) = {x, y, x, y};
    }
  }
  cert.at<float>(3, 4) = 0.0f;  // Uncertain: white.
  const cv::Mat v = DrawWarp(one, two, warp, cert);
  EXPECT_EQ(v.at<cv::Vec3b>(10, 10), cv::Vec3b(200, 100, 50));
  EXPECT_EQ(v.at<cv::Vec3b>(10, w + 10), cv::Vec3b(10, 20, 30));
  EXPECT_EQ(v.at<cv::Vec3b>(3, 4), cv::Vec3b(255, 255, 255));
  EXPECT_THROW(DrawWarp(one, two, cert, cert), std::invalid_argument);
}

// Random ViT-B/14 (518) weights written in the three layouts vis_feats reads.
void WriteVitB(const std::string& path,
               const std::string& prefix,
               bool with_mask_token,
               uint64_t seed) {
  torch::manual_seed(seed);
  DinoConfig config = DinoConfig::VitB14();
  config.img_size = 518;
  DinoVisionTransformer vit(config);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : vit->named_parameters()) {
    if (item.key() == "mask_token" && !with_mask_token) continue;
    tensors.emplace_back(prefix + item.key(), item.value().detach().clone());
  }
  WriteSafetensors(path, tensors, {});
}

TEST(VisFeats, ReadsTheThreeLayoutsAndDrawsTheGrid) {
  test::TempDir dir;
  WriteVitB(dir.File("dinov2.safetensors"), "", true, 1);
  WriteVitB(dir.File("fit3d.safetensors"), "", false, 2);
  WriteVitB(dir.File("l2m_vit_base.safetensors"), "model.", true, 3);
  for (int i = 0; i < 2; ++i) {
    cv::imwrite(dir.File("im" + std::to_string(i) + ".png"),
                test::RandomTexture(200 + 40 * i, 150, 10 + i));
  }
  std::string log;
  ASSERT_EQ(
      test::RunCommand(L2m() + " vis_feats --images " + dir.File("im0.png") +
                           " " + dir.File("im1.png") + " --encoder " +
                           dir.File("dinov2.safetensors") + " --encoder " +
                           dir.File("fit3d.safetensors") + " " +
                           dir.File("l2m_vit_base.safetensors") +
                           " --tile_size 128 --input_size 112 --num_threads 2"
                           " --output_path " +
                           dir.File("grid.png"),
                       &log),
      0)
      << log;
  EXPECT_NE(log.find("no mask_token"), std::string::npos) << log;
  EXPECT_NE(log.find("model."), std::string::npos) << log;
  const cv::Mat grid = cv::imread(dir.File("grid.png"));
  ASSERT_FALSE(grid.empty());
  EXPECT_EQ(grid.cols, 4 * 128);  // Photo + 3 encoders.
  EXPECT_EQ(grid.rows % 2, 0);
  const int tile_h = grid.rows / 2;
  // Each PCA tile has colour: z-scored components cannot be flat.
  for (int row = 0; row < 2; ++row) {
    for (int e = 1; e < 4; ++e) {
      cv::Mat tile =
          grid(cv::Rect(e * 128, row * tile_h + tile_h - 128, 128, 128));
      cv::Scalar mean, stddev;
      cv::meanStdDev(tile, mean, stddev);
      EXPECT_GT(stddev[0] + stddev[1] + stddev[2], 30) << row << " " << e;
    }
  }

  // A ViT-L checkpoint is refused with the mismatches named.
  {
    torch::manual_seed(0);
    DinoConfig large = DinoConfig::VitL14();
    large.depth = 1;  // Keeps the file small; the width already mismatches.
    DinoVisionTransformer vit(large);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& item : vit->named_parameters()) {
      tensors.emplace_back(item.key(), item.value().detach().clone());
    }
    WriteSafetensors(dir.File("vitl.safetensors"), tensors, {});
  }
  EXPECT_NE(test::RunCommand(
                L2m() + " vis_feats --images " + dir.File("im0.png") +
                    " --encoder " + dir.File("vitl.safetensors") +
                    " --input_size 112 --output_path " + dir.File("x.png"),
                &log),
            0);
  EXPECT_NE(log.find("vitl.safetensors"), std::string::npos) << log;
  EXPECT_NE(log.find("pos_embed"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir.File("x.png")));
}

}  // namespace
}  // namespace l2m
