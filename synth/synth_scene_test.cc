#include "synth/synth_scene.h"

#include "colmap_plugin/model_io.h"
#include "l2m_core/util/file.h"
#include "synth/npy.h"
#include "tests/test_utils.h"

#include <Eigen/Geometry>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace l2m {
namespace {

// A photo with texture at every pixel (cubic-upsampled noise) and a stereo-
// like disparity: a slanted background plane and a nearer box (a depth
// discontinuity, so the views have disocclusions).
void WritePhotoAndDisparity(const std::string& image_path,
                            const std::string& disparity_path) {
  cv::Mat noise(30, 40, CV_8UC3), image;
  cv::RNG(7).fill(noise, cv::RNG::UNIFORM, 0, 256);
  cv::resize(noise, image, cv::Size(200, 150), 0, 0, cv::INTER_CUBIC);
  ASSERT_TRUE(cv::imwrite(image_path, image));
  cv::Mat disparity(150, 200, CV_32F);
  for (int r = 0; r < 150; ++r)
    for (int c = 0; c < 200; ++c)
      disparity.at<float>(r, c) = (r >= 50 && r < 110 && c >= 70 && c < 130)
                                      ? 40.0f
                                      : 10.0f + 0.05f * r + 0.02f * c;
  WriteNpy(disparity_path, disparity);
}

struct Camera {
  int width = 0, height = 0;
  double fx = 0, fy = 0, cx = 0, cy = 0;
};

Camera ReadPinholeCamera(const std::string& path) {
  std::ifstream in(path);
  std::string line, model;
  Camera c;
  int id = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    ss >> id >> model >> c.width >> c.height >> c.fx >> c.fy >> c.cx >> c.cy;
    EXPECT_EQ(model, "PINHOLE");
    break;
  }
  return c;
}

float Bilinear(const cv::Mat& m, int channel, double x, double y) {
  // COLMAP pixel coordinates -> array indices.
  const double u = x - 0.5, v = y - 0.5;
  const int u0 = static_cast<int>(std::floor(u)),
            v0 = static_cast<int>(std::floor(v));
  const double fu = u - u0, fv = v - v0;
  auto at = [&](int r, int c) -> double {
    r = std::clamp(r, 0, m.rows - 1);
    c = std::clamp(c, 0, m.cols - 1);
    return m.type() == CV_32F ? m.at<float>(r, c)
                              : m.at<cv::Vec3b>(r, c)[channel];
  };
  return static_cast<float>(
      (1 - fv) * ((1 - fu) * at(v0, u0) + fu * at(v0, u0 + 1)) +
      fv * ((1 - fu) * at(v0 + 1, u0) + fu * at(v0 + 1, u0 + 1)));
}

struct Agreement {
  int checked = 0;     // Non-hole pixels of view a.
  int consistent = 0;  // ... that land on the same surface in view b.
  double mean_color_difference = 0;  // Over the consistent ones.
};

// Moves every non-hole pixel of view a to view b through depth a and the two
// cam_from_world poses, and compares depth and colour there.
Agreement CompareViews(const std::string& dir,
                       const std::string& a,
                       const std::string& b,
                       const Camera& cam,
                       const ModelImage& pose_a,
                       const ModelImage& pose_b) {
  const cv::Mat image_a = cv::imread(dir + "/images/" + a + ".png");
  const cv::Mat image_b = cv::imread(dir + "/images/" + b + ".png");
  const cv::Mat depth_a = ReadNpy(dir + "/depth/" + a + ".npy");
  const cv::Mat depth_b = ReadNpy(dir + "/depth/" + b + ".npy");
  const cv::Mat holes_a = cv::imread(dir + "/holes/" + a + ".png", 0);
  Agreement out;
  for (int r = 0; r < cam.height; ++r) {
    for (int c = 0; c < cam.width; ++c) {
      const float z = depth_a.at<float>(r, c);
      if (!(z > 0) || holes_a.at<uint8_t>(r, c)) continue;
      ++out.checked;
      const Eigen::Vector3d p_a(
          z * (c + 0.5 - cam.cx) / cam.fx, z * (r + 0.5 - cam.cy) / cam.fy, z);
      const Eigen::Vector3d world = pose_a.cam_from_world_rotation.inverse() *
                                    (p_a - pose_a.cam_from_world_translation);
      const Eigen::Vector3d p_b = pose_b.cam_from_world_rotation * world +
                                  pose_b.cam_from_world_translation;
      if (!(p_b.z() > 0)) continue;
      const double x = cam.fx * p_b.x() / p_b.z() + cam.cx;
      const double y = cam.fy * p_b.y() / p_b.z() + cam.cy;
      if (!(x > 1 && y > 1 && x < cam.width - 1 && y < cam.height - 1))
        continue;
      const float z_b = Bilinear(depth_b, 0, x, y);
      if (!(z_b > 0) || std::abs(p_b.z() - z_b) > 0.01 * z_b) continue;
      ++out.consistent;
      double diff = 0;
      for (int ch = 0; ch < 3; ++ch)
        diff += std::abs(image_a.at<cv::Vec3b>(r, c)[ch] -
                         Bilinear(image_b, ch, x, y));
      out.mean_color_difference += diff / 3;
    }
  }
  if (out.consistent > 0) out.mean_color_difference /= out.consistent;
  return out;
}

TEST(SynthScene, GroundTruthModelExplainsTheViews) {
  test::TempDir dir;
  WritePhotoAndDisparity(dir.File("photo.png"), dir.File("photo.npy"));
  SceneOptions options;
  options.num_views = 5;
  options.width = 160;
  options.height = 120;
  options.arc_degrees = 20;
  options.seed = 3;
  const std::string out = dir.File("scene");
  const SceneSummary summary =
      WriteScene(dir.File("photo.png"), dir.File("photo.npy"), out, options);
  EXPECT_EQ(summary.num_views, 5);
  // The box's disocclusions and the orbit leave holes, but not many.
  EXPECT_GT(summary.max_hole_fraction, 0.001);
  EXPECT_LT(summary.mean_hole_fraction, 0.25);

  // The model read back the way `l2m reconstruct --gt_model_path` reads it.
  const Camera cam = ReadPinholeCamera(out + "/ground_truth/cameras.txt");
  EXPECT_EQ(cam.width, 160);
  EXPECT_EQ(cam.height, 120);
  EXPECT_DOUBLE_EQ(cam.fx, 0.9 * 160);
  EXPECT_DOUBLE_EQ(cam.cx, 80);
  const auto model = ReadModelImagesText(out + "/ground_truth");
  ASSERT_EQ(model.size(), 5u);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out + "/images"))
    ++files;
  EXPECT_EQ(files, 5);
  for (const auto& [name, pose] : model) {
    const cv::Mat image = cv::imread(out + "/images/" + name);
    ASSERT_FALSE(image.empty()) << name;
    EXPECT_EQ(image.size(), cv::Size(160, 120)) << name;
  }

  // Every visible surface point lands, through the GT model, on the same
  // surface and colour in the other views.
  const std::vector<std::pair<int, int>> pairs = {{0, 4}, {1, 3}, {2, 0}};
  for (const auto& [i, j] : pairs) {
    const std::string a = "view_0" + std::to_string(i),
                      b = "view_0" + std::to_string(j);
    const Agreement agree = CompareViews(
        out, a, b, cam, model.at(a + ".png"), model.at(b + ".png"));
    SCOPED_TRACE(a + " -> " + b);
    EXPECT_GT(agree.checked, 160 * 120 / 2);
    EXPECT_GT(agree.consistent, agree.checked / 2);
    EXPECT_LT(agree.mean_color_difference, 6.0);

    // A pose 1 degree off is caught (the check can fail).
    ModelImage wrong = model.at(b + ".png");
    wrong.cam_from_world_rotation =
        Eigen::AngleAxisd(M_PI / 180, Eigen::Vector3d::UnitY()) *
        wrong.cam_from_world_rotation;
    const Agreement bad =
        CompareViews(out, a, b, cam, model.at(a + ".png"), wrong);
    EXPECT_GT(bad.mean_color_difference, 2 * agree.mean_color_difference);
  }
}

TEST(SynthScene, OrbitLooksAtTheTarget) {
  SceneOptions options;
  options.num_views = 7;
  options.arc_degrees = 30;
  options.elevation_degrees = 0;
  options.jitter_degrees = 0;
  options.radius = 1.5;
  const std::vector<Eigen::Matrix4d> poses = OrbitPoses(options);
  ASSERT_EQ(poses.size(), 7u);
  const Eigen::Vector3d target(0, 0, 1);
  for (int k = 0; k < 7; ++k) {
    const Eigen::Matrix3d R = poses[k].topLeftCorner<3, 3>();
    const Eigen::Vector3d t = poses[k].topRightCorner<3, 1>();
    EXPECT_NEAR(
        (R * R.transpose() - Eigen::Matrix3d::Identity()).norm(), 0, 1e-12);
    const Eigen::Vector3d center = -R.transpose() * t;
    EXPECT_NEAR((center - target).norm(), 1.5, 1e-12);
    const Eigen::Vector3d in_camera = R * target + t;
    EXPECT_NEAR(in_camera.x(), 0, 1e-12);
    EXPECT_NEAR(in_camera.y(), 0, 1e-12);
  }
  // First and last views are 30 degrees apart in yaw.
  const Eigen::Matrix3d relative = poses[6].topLeftCorner<3, 3>() *
                                   poses[0].topLeftCorner<3, 3>().transpose();
  EXPECT_NEAR(Eigen::AngleAxisd(relative).angle(), M_PI / 6, 1e-9);
}

std::string L2m() { return test::BinaryPath("colmap_plugin/l2m"); }

TEST(SynthSceneProgram, WritesTheSceneAndGivesClearErrors) {
  test::TempDir dir;
  WritePhotoAndDisparity(dir.File("photo.png"), dir.File("photo.npy"));
  std::string out;
  ASSERT_EQ(test::RunCommand(
                L2m() + " synth scene --image " + dir.File("photo.png") +
                    " --disparity " + dir.File("photo.npy") + " --output " +
                    dir.File("s") + " --num_views 3 --width 96 --height 64",
                &out),
            0)
      << out;
  EXPECT_NE(out.find("Wrote 3 views"), std::string::npos) << out;
  EXPECT_EQ(ReadModelImagesText(dir.File("s/ground_truth")).size(), 3u);
  EXPECT_TRUE(FileExists(dir.File("s/images/view_02.png")));
  EXPECT_TRUE(FileExists(dir.File("s/depth/view_02.npy")));

  // Missing photo.
  EXPECT_NE(test::RunCommand(L2m() + " synth scene --image " +
                                 dir.File("nothere.png") + " --output " +
                                 dir.File("t"),
                             &out),
            0);
  EXPECT_NE(out.find("nothere.png' does not exist"), std::string::npos) << out;
  // Corrupt photo.
  WriteFileAtomic(dir.File("corrupt.png"), "\x89PNG not really");
  EXPECT_NE(test::RunCommand(L2m() + " synth scene --image " +
                                 dir.File("corrupt.png") + " --output " +
                                 dir.File("t"),
                             &out),
            0);
  EXPECT_NE(out.find("corrupt.png' is corrupt"), std::string::npos) << out;
  // Disparity of another size.
  WriteNpy(dir.File("small.npy"), cv::Mat(10, 10, CV_32F, cv::Scalar(1)));
  EXPECT_NE(
      test::RunCommand(L2m() + " synth scene --image " + dir.File("photo.png") +
                           " --disparity " + dir.File("small.npy") +
                           " --output " + dir.File("t"),
                       &out),
      0);
  EXPECT_NE(out.find("is 10x10 but image"), std::string::npos) << out;
  // Bad option value.
  EXPECT_NE(
      test::RunCommand(L2m() + " synth scene --image " + dir.File("photo.png") +
                           " --output " + dir.File("t") + " --num_views 1",
                       &out),
      0);
  EXPECT_NE(out.find("num_views >= 2"), std::string::npos) << out;
}

}  // namespace
}  // namespace l2m
