#include "colmap_plugin/model_io.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

namespace l2m {
namespace {

std::map<std::string, ModelImage> Cameras(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  std::map<std::string, ModelImage> images;
  for (int i = 0; i < n; ++i) {
    ModelImage im;
    im.name = "im" + std::to_string(i) + ".png";
    im.cam_from_world_rotation = Eigen::Quaterniond(Eigen::AngleAxisd(
        u(rng), Eigen::Vector3d(u(rng), u(rng), 1).normalized()));
    im.cam_from_world_translation = Eigen::Vector3d(u(rng), u(rng), 3 + u(rng));
    images[im.name] = im;
  }
  return images;
}

TEST(ModelIo, SimilarityTransformedModelMatchesExactly) {
  const auto gt = Cameras(8, 1);
  // The same cameras in another world frame: X_est = s R X_gt + t.
  const double s = 2.5;
  const Eigen::Matrix3d R =
      Eigen::AngleAxisd(0.7, Eigen::Vector3d(0.2, 1, 0.1).normalized())
          .toRotationMatrix();
  const Eigen::Vector3d t(1, -2, 3);
  std::map<std::string, ModelImage> est;
  for (const auto& [name, im] : gt) {
    ModelImage e = im;
    const Eigen::Matrix3d r =
        im.cam_from_world_rotation.toRotationMatrix() * R.transpose();
    const Eigen::Vector3d c = s * R * im.Center() + t;
    e.cam_from_world_rotation = Eigen::Quaterniond(r);
    e.cam_from_world_translation = -r * c;
    est[name] = e;
  }
  const PoseComparison c = ComparePoses(est, gt);
  EXPECT_EQ(c.num_compared, 8);
  EXPECT_LT(c.rotation_error_deg_max, 1e-6);
  EXPECT_LT(c.position_error_max, 1e-6);

  // A 2-degree error on one camera shows up as such.
  Eigen::Matrix3d r = est["im3.png"].cam_from_world_rotation.toRotationMatrix();
  const Eigen::Vector3d c3 = est["im3.png"].Center();
  r = Eigen::AngleAxisd(2.0 * M_PI / 180, Eigen::Vector3d::UnitY())
          .toRotationMatrix() *
      r;
  est["im3.png"].cam_from_world_rotation = Eigen::Quaterniond(r);
  est["im3.png"].cam_from_world_translation = -r * c3;
  EXPECT_NEAR(ComparePoses(est, gt).rotation_error_deg_max, 2.0, 1e-6);
}

TEST(ModelIo, ReadsColmapTextAndRejectsGarbage) {
  test::TempDir dir;
  std::ofstream(dir.File("images.txt"))
      << "# comment\n1 1 0 0 0 0.5 0 0 1 a.png\n10 20 -1 30 40 -1\n"
         "2 0.7071068 0 0.7071068 0 0 0 1 1 b.png\n\n";
  const auto images = ReadModelImagesText(dir.path());
  ASSERT_EQ(images.size(), 2u);
  EXPECT_NEAR(images.at("a.png").Center().x(), -0.5, 1e-12);
  EXPECT_NEAR(images.at("b.png").cam_from_world_rotation.w(), 0.7071068, 1e-6);
  std::ofstream(dir.File("images.txt")) << "1 x 0 0 0 0 0 0 1 a.png\n";
  EXPECT_THROW(ReadModelImagesText(dir.path()), std::runtime_error);
  EXPECT_THROW(ReadModelImagesText(dir.File("missing")), std::runtime_error);
}

}  // namespace
}  // namespace l2m
