#include "synth/novel_view.h"

#include <Eigen/Geometry>
#include <Eigen/LU>
#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <random>

namespace l2m {
namespace {

cv::Mat TexturedImage(int width, int height, unsigned seed) {
  cv::Mat noise(height / 4 + 2, width / 4 + 2, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
  cv::Mat image;
  cv::resize(noise, image, cv::Size(width, height), 0, 0, cv::INTER_CUBIC);
  return image;
}

// A plane n . X = d in camera 1, lifted exactly.
LiftedImage PlanarScene(const PinholeCamera& camera,
                        const Eigen::Vector3d& n,
                        double d) {
  LiftedImage lifted;
  lifted.image = TexturedImage(camera.width, camera.height, 3);
  lifted.camera = camera;
  lifted.depth = cv::Mat(camera.height, camera.width, CV_32F);
  lifted.vertex_visible =
      cv::Mat(camera.height, camera.width, CV_8U, cv::Scalar(255));
  for (int r = 0; r < camera.height; ++r)
    for (int c = 0; c < camera.width; ++c) {
      const Eigen::Vector3d ray((c + 0.5 - camera.cx) / camera.fx,
                                (r + 0.5 - camera.cy) / camera.fy,
                                1);
      lifted.depth.at<float>(r, c) = static_cast<float>(d / n.dot(ray));
    }
  return lifted;
}

Eigen::Vector2d Apply(const Eigen::Matrix3d& H, double x, double y) {
  const Eigen::Vector3d p = H * Eigen::Vector3d(x, y, 1);
  return p.hnormalized();
}

TEST(NovelView, IdentityPoseReproducesTheInput) {
  const int w = 120, h = 90;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  LiftingOptions options;
  cv::Mat disparity(h, w, CV_32F);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c)
      disparity.at<float>(r, c) =
          0.5f + 0.3f * std::sin(c * 0.05f) * std::cos(r * 0.04f);
  const LiftedImage lifted =
      LiftImage(TexturedImage(w, h, 1), disparity, camera, options);
  ASSERT_EQ(cv::countNonZero(lifted.vertex_visible), w * h);
  NovelViewOptions view_options;
  view_options.raster.num_threads = 2;
  const NovelView view = RenderNovelView(
      lifted, camera, Eigen::Matrix4d::Identity(), view_options);
  EXPECT_EQ(cv::countNonZero(view.hole_mask), 0);
  cv::Mat diff;
  cv::absdiff(view.raw_image, lifted.image, diff);
  EXPECT_EQ(cv::norm(diff, cv::NORM_INF), 0);
  cv::Mat depth_diff;
  cv::absdiff(view.depth, lifted.depth, depth_diff);
  EXPECT_LT(cv::norm(depth_diff, cv::NORM_INF), 1e-4);
  const GtWarp gt = ComputeGtWarp(
      lifted.depth, camera, view.depth, camera, Eigen::Matrix4d::Identity());
  EXPECT_EQ(cv::countNonZero(gt.valid), w * h);
  EXPECT_NEAR(gt.warp.at<cv::Vec2f>(7, 11)[0], 11.5, 1e-4);
  EXPECT_NEAR(gt.warp.at<cv::Vec2f>(7, 11)[1], 7.5, 1e-4);
}

TEST(NovelView, PlanarSceneWarpIsTheHomography) {
  const int w = 160, h = 128;
  const PinholeCamera camera1 = PinholeCamera::FromFocalFraction(w, h, 0.55);
  const PinholeCamera camera2 = PinholeCamera::FromFocalFraction(w, h, 0.7);
  const Eigen::Vector3d n = Eigen::Vector3d(0.2, -0.3, 1).normalized();
  const double d = 2.0;
  const LiftedImage lifted = PlanarScene(camera1, n, d);
  std::mt19937_64 rng(5);
  PoseRangeOptions ranges;
  ranges.max_tz = 0.4;
  for (int trial = 0; trial < 3; ++trial) {
    const Eigen::Matrix4d T = SampleCam2FromCam1(ranges, &rng);
    const Eigen::Matrix3d R = T.topLeftCorner<3, 3>();
    const Eigen::Vector3d t = T.topRightCorner<3, 1>();
    // X2 = R X1 + t and n.X1 = d  =>  X2 = (R + t n^T / d) X1.
    const Eigen::Matrix3d H =
        camera2.K() * (R + t * n.transpose() / d) * camera1.K().inverse();
    NovelViewOptions options;
    options.inpaint = false;
    const NovelView view = RenderNovelView(lifted, camera2, T, options);
    const GtWarp forward =
        ComputeGtWarp(lifted.depth, camera1, view.depth, camera2, T);
    const GtWarp backward =
        ComputeGtWarp(view.depth, camera2, lifted.depth, camera1, T.inverse());
    EXPECT_GT(forward.covisibility, 0.3);
    EXPECT_GT(backward.covisibility, 0.3);
    double max_err = 0, max_err_back = 0;
    const Eigen::Matrix3d H_inv = H.inverse();
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        if (forward.valid.at<uint8_t>(r, c)) {
          const cv::Vec2f q = forward.warp.at<cv::Vec2f>(r, c);
          max_err = std::max(
              max_err,
              (Apply(H, c + 0.5, r + 0.5) - Eigen::Vector2d(q[0], q[1]))
                  .norm());
        }
        if (backward.valid.at<uint8_t>(r, c)) {
          const cv::Vec2f q = backward.warp.at<cv::Vec2f>(r, c);
          max_err_back = std::max(
              max_err_back,
              (Apply(H_inv, c + 0.5, r + 0.5) - Eigen::Vector2d(q[0], q[1]))
                  .norm());
        }
      }
    EXPECT_LT(max_err, 0.05) << "trial " << trial;
    // The backward warp uses the rasterised depth: this checks the z-buffer's
    // perspective-correct interpolation.
    EXPECT_LT(max_err_back, 0.05) << "trial " << trial;
    // Every pixel inside the homography's image is rendered (no holes).
    int inside = 0, holes = 0;
    for (int r = 2; r < h - 2; ++r)
      for (int c = 2; c < w - 2; ++c) {
        const Eigen::Vector2d p = Apply(H_inv, c + 0.5, r + 0.5);
        if (p.x() > 2 && p.y() > 2 && p.x() < w - 2 && p.y() < h - 2) {
          ++inside;
          holes += view.hole_mask.at<uint8_t>(r, c) > 0;
        }
      }
    EXPECT_GT(inside, 0);
    EXPECT_EQ(holes, 0);
  }
}

TEST(NovelView, ForwardAndBackwardWarpsAreConsistent) {
  const int w = 128, h = 128;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  LiftingOptions options;
  const cv::Mat disparity = ProceduralDisparity(w, h, 11);
  const LiftedImage lifted =
      LiftImage(TexturedImage(w, h, 2), disparity, camera, options);
  // Discontinuities exist, so some vertices are dropped.
  EXPECT_LT(cv::countNonZero(lifted.vertex_visible), w * h);
  std::mt19937_64 rng(9);
  const Eigen::Matrix4d T = SampleCam2FromCam1(PoseRangeOptions(), &rng);
  NovelViewOptions view_options;
  const NovelView view = RenderNovelView(lifted, camera, T, view_options);
  EXPECT_GT(cv::countNonZero(view.hole_mask), 0);
  const GtWarp forward =
      ComputeGtWarp(lifted.depth, camera, view.depth, camera, T);
  const GtWarp backward =
      ComputeGtWarp(view.depth, camera, lifted.depth, camera, T.inverse());
  int checked = 0, consistent = 0;
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      if (!forward.valid.at<uint8_t>(r, c)) continue;
      const cv::Vec2f q = forward.warp.at<cv::Vec2f>(r, c);
      const int qc = static_cast<int>(q[0]), qr = static_cast<int>(q[1]);
      if (!backward.valid.at<uint8_t>(qr, qc)) continue;
      const cv::Vec2f p = backward.warp.at<cv::Vec2f>(qr, qc);
      ++checked;
      // q is within half a pixel of the pixel centre (qc, qr), so its
      // backward warp lands near the start (up to the local scale change).
      consistent += std::hypot(p[0] - (c + 0.5), p[1] - (r + 0.5)) < 1.5;
    }
  EXPECT_GT(checked, w * h / 4);
  EXPECT_GT(consistent, 0.98 * checked);
  // Hole pixels of view 2 are never valid targets.
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c)
      if (view.hole_mask.at<uint8_t>(r, c))
        EXPECT_EQ(backward.valid.at<uint8_t>(r, c), 0);
}

TEST(NovelView, OcclusionIsCaughtByTheDepthTest) {
  // A near square in front of a far wall: moving sideways hides part of the
  // wall, whose source pixels must then be invalid (5 % depth test).
  const int w = 96, h = 96;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  cv::Mat disparity(h, w, CV_32F, cv::Scalar(0.1f));
  disparity(cv::Rect(32, 32, 32, 32)).setTo(1.0f);
  const LiftedImage lifted =
      LiftImage(TexturedImage(w, h, 4), disparity, camera, LiftingOptions());
  Eigen::Matrix4d T = Eigen::Matrix4d::Identity();
  T(0, 3) = 0.3;  // Camera 2 moves left: near things shift right more.
  NovelViewOptions options;
  const NovelView view = RenderNovelView(lifted, camera, T, options);
  const GtWarp forward =
      ComputeGtWarp(lifted.depth, camera, view.depth, camera, T);
  // Wall pixels just right of the square are hidden behind it in view 2.
  int hidden = 0;
  for (int r = 40; r < 56; ++r)
    for (int c = 66; c < 72; ++c)
      hidden += forward.valid.at<uint8_t>(r, c) == 0;
  EXPECT_EQ(hidden, 16 * 6);
  // Square pixels stay valid and move by f * tx / z = 57.6 * 0.3 / 1.001.
  const cv::Vec2f q = forward.warp.at<cv::Vec2f>(48, 48);
  EXPECT_NEAR(q[0] - 48.5, 57.6 * 0.3 / (1.0 / 1.0), 0.1);
}

TEST(NovelView, CoarseInpaintingFillsHolesAndKeepsKnownPixels) {
  const int w = 96, h = 72;
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(w, h, 0.6);
  cv::Mat disparity(h, w, CV_32F, cv::Scalar(0.3f));
  disparity(cv::Rect(30, 20, 30, 30)).setTo(1.0f);  // A near box: holes.
  const LiftedImage lifted =
      LiftImage(TexturedImage(w, h, 4), disparity, camera, LiftingOptions());
  Eigen::Matrix4d T = Eigen::Matrix4d::Identity();
  T(0, 3) = 0.15;
  NovelViewOptions options;
  options.inpaint_scale = 2;
  const NovelView view = RenderNovelView(lifted, camera, T, options);
  const int holes = cv::countNonZero(view.hole_mask);
  ASSERT_GT(holes, 50);
  int changed_known = 0, black_holes = 0;
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const cv::Vec3b a = view.image.at<cv::Vec3b>(r, c);
      if (view.hole_mask.at<uint8_t>(r, c))
        black_holes += a == cv::Vec3b(0, 0, 0);
      else
        changed_known += a != view.raw_image.at<cv::Vec3b>(r, c);
    }
  EXPECT_EQ(changed_known, 0);
  EXPECT_EQ(black_holes, 0);
  // The fill is close to full-resolution Telea's (both are smooth).
  options.inpaint_scale = 1;
  const NovelView full = RenderNovelView(lifted, camera, T, options);
  cv::Mat diff;
  cv::absdiff(view.image, full.image, diff);
  EXPECT_LT(cv::mean(diff, view.hole_mask)[0], 40.0);
}

// The rasteriser's culling, row spans and per-thread z-buffers skip work
// only: every pixel must get exactly the face and depth that testing it
// against every triangle gives, for any thread count.
TEST(Rasterizer, EqualsBruteForceForAnyThreadCount) {
  const int rows = 24, cols = 32;
  PinholeCamera camera = PinholeCamera::FromFocalFraction(40, 30, 0.7);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<Eigen::Vector3f> points(rows * cols);
  std::vector<uint8_t> valid(rows * cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      // Two depth layers with a jagged border (long thin triangles across
      // it), a few invalid vertices, slightly jittered positions.
      const float z = (j > 12 + 4 * std::sin(i * 0.7f)) ? 4.0f : 1.5f;
      const float x = ((j + 0.5f) / cols - 0.5f) * 1.3f * z + 0.02f * u(rng);
      const float y = ((i + 0.5f) / rows - 0.5f) * 1.0f * z + 0.02f * u(rng);
      points[i * cols + j] = Eigen::Vector3f(x, y, z + 0.1f * u(rng));
      valid[i * cols + j] = u(rng) > 0.05f;
    }
  // Brute force with the rasteriser's own coverage rule.
  auto edge = [](const Eigen::Vector3f& a,
                 const Eigen::Vector3f& b,
                 float px,
                 float py) {
    return (b.x() - a.x()) * (py - a.y()) - (b.y() - a.y()) * (px - a.x());
  };
  std::vector<Eigen::Vector3f> screen(points.size());  // x, y, 1/z.
  for (size_t k = 0; k < points.size(); ++k) {
    const float iz = 1.0f / points[k].z();
    screen[k] =
        Eigen::Vector3f(static_cast<float>(camera.fx) * points[k].x() * iz +
                            static_cast<float>(camera.cx),
                        static_cast<float>(camera.fy) * points[k].y() * iz +
                            static_cast<float>(camera.cy),
                        iz);
  }
  std::vector<float> depth(camera.width * camera.height, 0);
  std::vector<int> face(camera.width * camera.height, -1);
  for (int f = 0; f < 2 * (rows - 1) * (cols - 1); ++f) {
    int v[3];
    GridFaceVertices(f, cols, v);
    if (!valid[v[0]] || !valid[v[1]] || !valid[v[2]]) continue;
    const Eigen::Vector3f &a = screen[v[0]], &b = screen[v[1]],
                          &c = screen[v[2]];
    const float area = edge(a, b, c.x(), c.y());
    if (std::abs(area) < 1e-12f) continue;
    const float inv_area = 1.0f / area;
    for (int r = 0; r < camera.height; ++r)
      for (int col = 0; col < camera.width; ++col) {
        const float px = col + 0.5f, py = r + 0.5f;
        const float l0 = edge(b, c, px, py) * inv_area;
        const float l1 = edge(c, a, px, py) * inv_area;
        const float l2 = edge(a, b, px, py) * inv_area;
        if (l0 < -1e-5f || l1 < -1e-5f || l2 < -1e-5f) continue;
        const float inv_z = l0 * a.z() + l1 * b.z() + l2 * c.z();
        if (!(inv_z > 0)) continue;
        const float z = 1.0f / inv_z;
        const int index = r * camera.width + col;
        if (face[index] < 0 || z < depth[index] ||
            (z == depth[index] && f < face[index])) {
          depth[index] = z;
          face[index] = f;
        }
      }
  }
  int covered = 0;
  for (int f : face) covered += f >= 0;
  ASSERT_GT(covered, camera.width * camera.height / 2);
  for (int threads : {1, 2, 3}) {
    RasterOptions options;
    options.num_threads = threads;
    Fragments fragments;
    RasterizeGridMesh(
        points, rows, cols, valid.data(), camera, options, &fragments);
    int mismatches = 0;
    for (size_t k = 0; k < face.size(); ++k)
      mismatches +=
          fragments.face[k] != face[k] || fragments.depth[k] != depth[k];
    EXPECT_EQ(mismatches, 0) << threads << " thread(s)";
  }
}

}  // namespace
}  // namespace l2m
