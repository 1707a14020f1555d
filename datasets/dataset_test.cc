#include "datasets/dataset.h"

#include "datasets/evaluation.h"
#include "datasets/metrics.h"
#include "datasets/npz.h"
#include "matcher_adapters/matcher_factory.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace l2m {
namespace {

cv::Matx33d RotY(double deg) {
  const double a = deg * M_PI / 180;
  return {std::cos(a), 0, std::sin(a), 0, 1, 0, -std::sin(a), 0, std::cos(a)};
}

const cv::Matx33d kK(500, 0, 319.5, 0, 500, 239.5, 0, 0, 1);

// Two views of a two-plane scene seen by camera 1 (left half of its image on
// Z = 4, right half on the tilted plane Z = 6 + 0.3 X): image 1 is a random
// texture, image 2 is rendered by ray casting into the planes and sampling
// image 1 there. cam2_from_cam1 = (R, t).
void RenderTwoPlaneScene(const cv::Matx33d& R,
                         const cv::Vec3d& t,
                         cv::Mat* img1,
                         cv::Mat* img2) {
  const int w = 640, h = 480;
  cv::RNG rng(7);
  cv::Mat tex(h, w, CV_8UC3);
  rng.fill(tex, cv::RNG::UNIFORM, 60, 200);
  cv::GaussianBlur(tex, tex, cv::Size(0, 0), 6);
  for (int i = 0; i < 700; ++i)
    cv::circle(
        tex,
        {rng.uniform(0, w), rng.uniform(0, h)},
        rng.uniform(3, 22),
        cv::Scalar(
            rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)),
        -1,
        cv::LINE_AA);
  cv::GaussianBlur(tex, tex, cv::Size(0, 0), 0.8);
  *img1 = tex;
  cv::Mat map_x(h, w, CV_32F, cv::Scalar(-100)),
      map_y(h, w, CV_32F, cv::Scalar(-100));
  const cv::Matx33d Kinv = kK.inv(), Rt = R.t();
  const cv::Vec3d c = -(Rt * t);
  for (int v = 0; v < h; ++v)
    for (int u = 0; u < w; ++u) {
      const cv::Vec3d d = Rt * (Kinv * cv::Vec3d(u, v, 1));
      double best = 1e30;
      for (int plane = 0; plane < 2; ++plane) {
        const double s = plane == 0
                             ? (4 - c[2]) / d[2]
                             : (6 + 0.3 * c[0] - c[2]) / (d[2] - 0.3 * d[0]);
        if (!(s > 0) || s >= best) continue;
        const cv::Vec3d X = c + s * d;
        const cv::Vec3d q = kK * X;
        const double x = q[0] / q[2], y = q[1] / q[2];
        if ((plane == 0) != (x < 319.5)) continue;
        best = s;
        map_x.at<float>(v, u) = static_cast<float>(x);
        map_y.at<float>(v, u) = static_cast<float>(y);
      }
    }
  cv::remap(tex,
            *img2,
            map_x,
            map_y,
            cv::INTER_LINEAR,
            cv::BORDER_CONSTANT,
            cv::Scalar(90, 90, 90));
}

std::vector<double> Flat(const cv::Matx33d& m) {
  return std::vector<double>(m.val, m.val + 9);
}
std::vector<double> Flat44(const cv::Matx33d& R, const cv::Vec3d& t) {
  return {R(0, 0),
          R(0, 1),
          R(0, 2),
          t[0],
          R(1, 0),
          R(1, 1),
          R(1, 2),
          t[1],
          R(2, 0),
          R(2, 1),
          R(2, 2),
          t[2],
          0,
          0,
          0,
          1};
}

class SyntheticBenchmarks : public ::testing::Test {
 protected:
  void SetUp() override {
    R_ = RotY(-3);
    t_ = -(R_ * cv::Vec3d(0.4, 0.05, 0));  // Camera 2 centre at (0.4, 0.05, 0).
    RenderTwoPlaneScene(R_, t_, &img1_, &img2_);
  }
  void WriteImages(const std::string& path1, const std::string& path2) {
    fs::create_directories(fs::path(path1).parent_path());
    fs::create_directories(fs::path(path2).parent_path());
    ASSERT_TRUE(cv::imwrite(path1, img1_, {cv::IMWRITE_JPEG_QUALITY, 95}));
    ASSERT_TRUE(cv::imwrite(path2, img2_, {cv::IMWRITE_JPEG_QUALITY, 95}));
  }
  // Evaluates with SIFT and checks that the GT is wired right (small error).
  nlohmann::json Evaluate(const PairDataset& dataset, const std::string& out) {
    MatcherOptions mo;
    mo.type = "sift";
    auto matcher = CreateMatcher(mo);
    EvalOptions eo;
    eo.num_worst_pairs = 1;
    std::ostringstream log;
    const nlohmann::json s =
        RunEvaluation(dataset, matcher.get(), eo, out, "test", &log);
    EXPECT_EQ(s["num_pairs"].get<int>(), 1);
    EXPECT_GT(s["auc@20"].get<double>(), 70.0) << s.dump(2);
    EXPECT_GT(s["precision"].get<double>(), 70.0) << s.dump(2);
    EXPECT_TRUE(fs::exists(out + "/results.json"));
    EXPECT_TRUE(fs::exists(out + "/results.md"));
    EXPECT_TRUE(fs::exists(out + "/curves.png"));
    return s;
  }
  cv::Matx33d R_;
  cv::Vec3d t_;
  cv::Mat img1_, img2_;
};

TEST_F(SyntheticBenchmarks, MegaDepth1500FormatEndToEnd) {
  test::TempDir dir;
  const std::string root = dir.path();
  // Images as in the scene info (paths relative to the data root).
  WriteImages(root + "/Undistorted_SfM/0015/images/a.jpg",
              root + "/Undistorted_SfM/0015/images/b.jpg");
  // cam_from_world of both: camera 0 somewhere, camera 1 = (R, t) * camera 0.
  const cv::Matx33d R0 = RotY(20);
  const cv::Vec3d t0(1, 2, 3);
  const cv::Matx33d R1 = R_ * R0;
  const cv::Vec3d t1 = R_ * t0 + t_;
  std::map<std::string, NpyArray> info;
  info["image_paths"] = NpyArray::FromObjects(
      {3},
      {PyValue::None(),
       PyValue::String("Undistorted_SfM/0015/images/a.jpg"),
       PyValue::String("Undistorted_SfM/0015/images/b.jpg")});
  info["depth_paths"] = NpyArray::FromObjects(
      {3}, {PyValue::None(), PyValue::None(), PyValue::None()});
  info["intrinsics"] = NpyArray::FromObjects(
      {3},
      {PyValue::None(),
       PyValue::Array(NpyArray::FromDoubles({3, 3}, Flat(kK))),
       PyValue::Array(NpyArray::FromDoubles({3, 3}, Flat(kK)))});
  info["poses"] = NpyArray::FromObjects(
      {3},
      {PyValue::None(),
       PyValue::Array(NpyArray::FromDoubles({4, 4}, Flat44(R0, t0))),
       PyValue::Array(NpyArray::FromDoubles({4, 4}, Flat44(R1, t1)))});
  info["pair_infos"] = NpyArray::FromObjects(
      {1},
      {PyValue::Sequence(
          {PyValue::Sequence({PyValue::Int(1), PyValue::Int(2)}),
           PyValue::Float(0.4),
           PyValue::Array(NpyArray::FromInts({1, 2}, {1, 2}))})});
  fs::create_directories(root + "/megadepth_test_1500_scene_info");
  WriteNpzArchive(root + "/megadepth_test_1500_scene_info/0015_0.1_0.3.npz",
                  info);

  const PairDataset d = CreateDataset("megadepth1500", root);
  ASSERT_EQ(d.pairs.size(), 1u);
  EXPECT_EQ(d.pairs[0].name, "0015_0.1_0.3/a-b");
  EXPECT_LT(RotationErrorDeg(d.pairs[0].R, R_), 1e-9);
  EXPECT_LT(cv::norm(d.pairs[0].t - t_), 1e-9);
  const nlohmann::json s = Evaluate(d, root + "/out");
  EXPECT_NE(s["protocol"].get<std::string>().find("long side 1200"),
            std::string::npos);

  // Missing images: a clear message that says what to download.
  fs::remove(root + "/Undistorted_SfM/0015/images/b.jpg");
  MatcherOptions mo;
  auto matcher = CreateMatcher(mo);
  try {
    RunEvaluation(CreateDataset("megadepth1500", root),
                  matcher.get(),
                  EvalOptions(),
                  root + "/out2",
                  "x",
                  nullptr);
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("1 of 2 images are missing"), std::string::npos)
        << what;
    EXPECT_NE(what.find("megadepth_test_1500_scene_info"), std::string::npos)
        << what;
  }
}

TEST_F(SyntheticBenchmarks, ScanNet1500FormatEndToEnd) {
  test::TempDir dir;
  const std::string root = dir.path();
  WriteImages(root + "/scans_test/scene0707_00/color/15.jpg",
              root + "/scans_test/scene0707_00/color/585.jpg");
  std::vector<double> rel = Flat44(R_, t_);
  rel.resize(12);
  WriteNpzArchive(root + "/test.npz",
                  {{"name", NpyArray::FromInts({1, 4}, {707, 0, 15, 585})},
                   {"rel_pose", NpyArray::FromDoubles({1, 3, 4}, rel)}});
  WriteNpzArchive(root + "/intrinsics.npz",
                  {{"scene0707_00", NpyArray::FromDoubles({3, 3}, Flat(kK))}});
  const PairDataset d = CreateDataset("scannet1500", root);
  ASSERT_EQ(d.pairs.size(), 1u);
  EXPECT_EQ(d.pairs[0].name, "scene0707_00/15-585");
  EXPECT_EQ(d.pairs[0].K_size1, cv::Size(640, 480));
  const nlohmann::json s = Evaluate(d, root + "/out");
  EXPECT_NE(s["protocol"].get<std::string>().find("short side 480"),
            std::string::npos);

  EXPECT_THROW(CreateDataset("scannet1500", root + "/nothing"),
               std::runtime_error);
  EXPECT_THROW(CreateDataset("no_such_benchmark", root), std::invalid_argument);
}

TEST_F(SyntheticBenchmarks, SuperGluePairsAndResume) {
  test::TempDir dir;
  const std::string root = dir.path();
  WriteImages(root + "/images/s_1.jpg", root + "/images/s_2.jpg");
  std::ofstream out(root + "/synthetic_pairs_with_gt.txt");
  out << std::setprecision(17) << "s_1.jpg s_2.jpg 0 0";
  for (int k = 0; k < 2; ++k)
    for (double v : Flat(kK)) out << " " << v;
  for (double v : Flat44(R_, t_)) out << " " << v;
  out << "\n";
  out.close();
  const PairDataset d = CreateDataset("scannet_pairs", root);
  ASSERT_EQ(d.pairs.size(), 1u);
  EXPECT_LT(cv::norm(d.pairs[0].t - t_), 1e-12);
  const nlohmann::json first = Evaluate(d, root + "/out");
  // A rerun reads the stored pair instead of matching again.
  MatcherOptions mo;
  auto matcher = CreateMatcher(mo);
  std::ostringstream log;
  const nlohmann::json again = RunEvaluation(
      d, matcher.get(), EvalOptions(), root + "/out", "test", &log);
  EXPECT_NE(log.str().find("1 of 1 pairs resumed"), std::string::npos)
      << log.str();
  EXPECT_EQ(first["auc@10"], again["auc@10"]);
}

TEST(HomographyReader, CmpAndOxfordConventions) {
  test::TempDir dir;
  const std::string root = dir.path();
  cv::Mat img(60, 80, CV_8UC3, cv::Scalar(1, 2, 3));
  for (const char* name :
       {"/XA.png", "/XB.png", "/ox/img1.png", "/ox/img3.png"}) {
    fs::create_directories(fs::path(root + name).parent_path());
    cv::imwrite(root + name, img);
  }
  // x_A ~ H x_B in 1-based pixels.
  const cv::Matx33d H_ab(1.1, 0.02, 3, -0.01, 0.95, 2, 1e-4, 0, 1);
  std::ofstream(root + "/X_model.txt")
      << "# provenance comment\n1.1 0.02 3\n-0.01 0.95 2\n1e-4 0 1\n";
  const cv::Point2d b1(20, 30), a1 = ApplyHomography(H_ab, b1);  // 1-based.
  std::ofstream(root + "/X_vpts.txt")
      << std::setprecision(17) << a1.x << " " << a1.y << " " << b1.x << " "
      << b1.y << "\n";
  // Oxford: x_3 ~ H x_1 in 0-based pixels.
  std::ofstream(root + "/ox/H1to3p") << "1 0 5\n0 1 -2\n0 0 1\n";
  const std::vector<EvalPair> pairs = ReadHomographyPairs(root);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].name, "X");
  // A -> B in COLMAP pixels: A's point (1-based a1) is at a1 - 0.5.
  const cv::Point2d b = ApplyHomography(pairs[0].H, a1 - cv::Point2d(0.5, 0.5));
  EXPECT_NEAR(b.x, b1.x - 0.5, 1e-9);
  EXPECT_NEAR(b.y, b1.y - 0.5, 1e-9);
  ASSERT_EQ(pairs[0].gt_points.size(), 1u);
  EXPECT_NEAR(pairs[0].gt_points[0][2], b1.x - 0.5, 1e-9);
  EXPECT_EQ(pairs[1].name, "ox_img1to3");
  const cv::Point2d o =
      ApplyHomography(pairs[1].H, {10.5, 10.5});  // 0-based (10, 10).
  EXPECT_NEAR(o.x, 15.5, 1e-12);
  EXPECT_NEAR(o.y, 8.5, 1e-12);
}

}  // namespace
}  // namespace l2m
