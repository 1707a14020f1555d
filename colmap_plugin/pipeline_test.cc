// Integration tests: the database layer through the real `colmap` binary,
// the `l2m` program end to end, kill-and-resume, and bad input.

#include "colmap_plugin/colmap_runner.h"
#include "colmap_plugin/database.h"
#include "colmap_plugin/verification.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace l2m {
namespace {

namespace fs = std::filesystem;

std::string L2m() { return test::BinaryPath("colmap_plugin/l2m"); }

#define L2M_REQUIRE_COLMAP()                                               \
  if (FindExecutable("colmap").empty()) {                                  \
    GTEST_SKIP()                                                           \
        << "the colmap program is not installed (apt-get install colmap)"; \
  }

// 6 cameras on an arc looking at 400 random points in a 3D box: keypoints
// are exact projections (+0.3 px noise), matches are the true ones (+10 %
// wrong ones). Written with our Database, read by colmap.
void WriteSyntheticScene(Database* db) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  std::normal_distribution<double> noise(0, 0.3);
  const int num_points = 400, num_images = 6;
  const double f = 500, cx = 320, cy = 240;
  std::vector<std::array<double, 3>> points(num_points);
  for (auto& p : points) p = {u(rng), u(rng), 4 + 1.5 * u(rng)};
  const camera_t cam = db->WriteCamera({0, 0, 640, 480, {f, cx, cy}, true});
  std::vector<std::vector<DbKeypoint>> kps(num_images);
  for (int i = 0; i < num_images; ++i) {
    db->WriteImage({0, "img" + std::to_string(i) + ".png", cam});
    // Camera i: rotated about y by a_i around the box centre (0, 0, 4).
    const double a = (i - 2.5) * 0.12;
    for (const auto& p : points) {
      const double x = p[0], z = p[2] - 4;
      const double xc = std::cos(a) * x - std::sin(a) * z,
                   zc = std::sin(a) * x + std::cos(a) * z + 4;
      kps[i].push_back({static_cast<float>(f * xc / zc + cx + noise(rng)),
                        static_cast<float>(f * p[1] / zc + cy + noise(rng)),
                        1,
                        0});
    }
    db->WriteKeypoints(i + 1, kps[i]);
  }
  for (int i = 1; i <= num_images; ++i) {
    for (int j = i + 1; j <= num_images; ++j) {
      std::vector<DbMatch> m;
      for (int k = 0; k < num_points; ++k)
        m.push_back({static_cast<point2D_t>(k), static_cast<point2D_t>(k)});
      for (int k = 0; k < num_points / 10; ++k) {
        m.push_back({static_cast<point2D_t>(k),
                     static_cast<point2D_t>((k * 7 + 13) % num_points)});
      }
      db->WriteMatches(i, j, m);
    }
  }
}

TEST(Colmap, MapsWhatWeWrote) {
  L2M_REQUIRE_COLMAP();
  test::TempDir dir;
  const std::string db_path = dir.File("database.db");
  fs::create_directories(dir.File("images"));
  std::vector<ImagePair> pairs;
  {
    Database db(db_path, Database::Mode::kCreate);
    WriteSyntheticScene(&db);
    for (image_t i = 1; i <= 6; ++i)
      for (image_t j = i + 1; j <= 6; ++j) pairs.push_back({i, j});
    VerificationOptions options;  // colmap matches_importer
    const VerificationSummary s = VerifyPairs(pairs, options, dir.path(), &db);
    EXPECT_EQ(s.num_verified, 15u);
    // The duplicate (one-to-many) wrong matches are rejected as outliers.
    EXPECT_GE(db.ReadTwoViewGeometry(1, 2).inlier_matches.size(), 390u);
    EXPECT_LE(db.ReadTwoViewGeometry(1, 2).inlier_matches.size(), 405u);
  }
  ColmapRunner colmap("colmap", dir.File("colmap.log"));
  const auto models = colmap.Map(db_path,
                                 dir.File("images"),
                                 dir.File("sparse"),
                                 {{"extract_colors", "0"}});
  ASSERT_EQ(models.size(), 1u);
  const ModelStats stats = colmap.Analyze(models[0]);
  EXPECT_EQ(stats.registered_images, 6);
  EXPECT_GE(stats.num_points3D, 380);
  EXPECT_GT(stats.mean_track_length, 5.5);
  EXPECT_LT(stats.mean_reprojection_error, 1.0);

  // In-process OpenCV verification gives the same inliers (within a few).
  Database db(db_path, Database::Mode::kReadWrite);
  VerificationOptions cv_options;
  cv_options.method = "opencv";
  const VerificationSummary s = VerifyPairs(pairs, cv_options, dir.path(), &db);
  EXPECT_EQ(s.num_verified, 15u);
  EXPECT_GE(db.ReadTwoViewGeometry(2, 3).inlier_matches.size(), 390u);
}

TEST(Colmap, ParsesModelAnalyzerOfBothVersions) {
  const ModelStats a = ParseModelAnalyzer(
      "Cameras: 1\nImages: 6\nRegistered images: 6\nPoints: 400\nObservations: "
      "2400\n"
      "Mean track length: 6.000000\nMean observations per image: "
      "400.000000\nMean reprojection error: 0.325227px\n");
  EXPECT_EQ(a.registered_images, 6);
  EXPECT_EQ(a.num_images, 6);
  EXPECT_EQ(a.num_points3D, 400);
  EXPECT_DOUBLE_EQ(a.mean_reprojection_error, 0.325227);
  const ModelStats b = ParseModelAnalyzer(
      "I20260101 model.cc:1] Rigs: 1\nI20260101 model.cc:2] Cameras: "
      "2\nI20260101 model.cc:3] Images: 9\n"
      "I20260101 model.cc:4] Registered images: 8\nI20260101 model.cc:5] "
      "Points: 1514\n"
      "I20260101 model.cc:6] Mean track length: 3.84\nI20260101 model.cc:7] "
      "Mean reprojection error: 0.35px\n");
  EXPECT_EQ(b.registered_images, 8);
  EXPECT_EQ(b.num_images, 9);
  EXPECT_DOUBLE_EQ(b.mean_track_length, 3.84);
  EXPECT_THROW(ParseModelAnalyzer("nothing"), std::runtime_error);
}

// A textured synthetic "video": one random-texture canvas seen through a
// window that slides a few pixels per frame (small baseline).
void WriteSequence(const std::string& dir,
                   int num_frames,
                   int width,
                   int height) {
  fs::create_directories(dir);
  cv::Mat canvas(height + 40, width + 20 * num_frames, CV_8UC3);
  cv::RNG rng(7);
  rng.fill(canvas, cv::RNG::UNIFORM, 0, 255);
  cv::GaussianBlur(canvas, canvas, cv::Size(0, 0), 2.0);
  for (int i = 0; i < num_frames; ++i) {
    cv::Mat frame =
        canvas(cv::Rect(12 * i, 20 + (i % 3), width, height)).clone();
    char name[64];
    std::snprintf(name, sizeof(name), "%s/frame_%03d.png", dir.c_str(), i);
    cv::imwrite(name, frame);
  }
}

int CountRows(const std::string& db_path, const std::string& table) {
  Database db(db_path, Database::Mode::kReadOnly);
  return static_cast<int>(db.QueryInt("SELECT COUNT(*) FROM " + table));
}

TEST(L2mProgram, KilledMatchResumesWithEveryPairOnce) {
  L2M_REQUIRE_COLMAP();
  test::TempDir dir;
  const std::string images = dir.File("images"), db_path = dir.File("db.db");
  WriteSequence(images, 12, 480, 360);
  std::string out;
  ASSERT_EQ(test::RunCommand(L2m() + " image_import --database_path " +
                                 db_path + " --image_path " + images,
                             &out),
            0)
      << out;
  const int total = 12 * 11 / 2;
  // Start `l2m match` and SIGKILL it once a few pairs are committed.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string log = dir.File("match1.log");
    freopen(log.c_str(), "w", stdout);
    freopen(log.c_str(), "a", stderr);
    execl(L2m().c_str(),
          "l2m",
          "match",
          "--database_path",
          db_path.c_str(),
          "--image_path",
          images.c_str(),
          "--Matcher.type",
          "flow",
          nullptr);
    _exit(127);
  }
  int done_at_kill = 0;
  for (int k = 0; k < 6000; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    try {
      done_at_kill = CountRows(db_path, "l2m_raw_matches");
    } catch (const std::exception&) {
      continue;  // Table not created yet.
    }
    if (done_at_kill >= 3) break;
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status))
      << "l2m match finished before it could be killed";
  EXPECT_LT(done_at_kill, total);
  // Rerun: only the missing pairs are matched.
  ASSERT_EQ(test::RunCommand(L2m() + " match --database_path " + db_path +
                                 " --image_path " + images +
                                 " --Matcher.type flow --log_level 1",
                             &out),
            0)
      << out;
  EXPECT_NE(out.find("already done"), std::string::npos) << out;
  EXPECT_EQ(CountRows(db_path, "l2m_raw_matches"), total);
  // Every pair exactly once (pair_id is the primary key; count distinct too).
  {
    Database db(db_path, Database::Mode::kReadOnly);
    EXPECT_EQ(
        db.QueryInt("SELECT COUNT(DISTINCT pair_id) FROM l2m_raw_matches"),
        total);
    EXPECT_EQ(
        db.QueryInt("SELECT COUNT(*) FROM l2m_raw_matches WHERE rows = 0"), 0);
  }
  // Tracks, then colmap verifies what we wrote.
  ASSERT_EQ(
      test::RunCommand(L2m() + " tracks --database_path " + db_path, &out), 0)
      << out;
  ASSERT_EQ(test::RunCommand(L2m() + " verify --database_path " + db_path +
                                 " --work_path " + dir.path(),
                             &out),
            0)
      << out;
  Database db(db_path, Database::Mode::kReadOnly);
  EXPECT_EQ(db.QueryInt("SELECT COUNT(*) FROM matches"), total);
  // Neighbouring frames overlap almost entirely: colmap verifies them.
  EXPECT_GT(
      db.QueryInt("SELECT COUNT(*) FROM two_view_geometries WHERE rows >= 15"),
      11);
}

TEST(L2mProgram, ClearErrorsForBadInput) {
  L2M_REQUIRE_COLMAP();
  test::TempDir dir;
  std::string out;
  const std::string images = dir.File("images");
  WriteSequence(images, 3, 160, 120);
  // A corrupt JPEG and a 16-bit PNG beside good images.
  std::ofstream(images + "/corrupt.jpg") << "\xff\xd8\xff not really a jpeg";
  cv::imwrite(images + "/deep.png",
              cv::Mat(120, 160, CV_16UC1, cv::Scalar(40000)));
  const std::string db_path = dir.File("db.db");

  EXPECT_EQ(test::RunCommand(L2m() + " image_import --database_path " +
                                 db_path + " --image_path " + images,
                             &out),
            0)
      << out;
  EXPECT_NE(out.find("corrupt.jpg"), std::string::npos) << out;
  EXPECT_NE(out.find("deep.png"), std::string::npos) << out;
  EXPECT_NE(out.find("16"), std::string::npos) << out;
  EXPECT_NE(out.find("Imported 3 images"), std::string::npos) << out;

  // --ImageReader.strict 1: the same folder is an error.
  EXPECT_EQ(test::RunCommand(L2m() + " image_import --database_path " +
                                 dir.File("strict.db") + " --image_path " +
                                 images + " --ImageReader.strict 1",
                             &out),
            1);
  EXPECT_NE(out.find("ERROR"), std::string::npos) << out;

  // Empty and missing folders.
  fs::create_directories(dir.File("empty"));
  EXPECT_EQ(test::RunCommand(L2m() + " image_import --database_path " +
                                 dir.File("e.db") + " --image_path " +
                                 dir.File("empty"),
                             &out),
            1);
  EXPECT_NE(out.find("contains no images"), std::string::npos) << out;
  EXPECT_EQ(test::RunCommand(L2m() + " image_import --database_path " +
                                 dir.File("e.db") + " --image_path " +
                                 dir.File("nope"),
                             &out),
            1);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;

  // A pair file naming an unknown image.
  std::ofstream(dir.File("pairs.txt"))
      << "frame_000.png frame_001.png\nframe_000.png missing.png\n";
  EXPECT_EQ(test::RunCommand(L2m() + " match --database_path " + db_path +
                                 " --image_path " + images + " --pairs_path " +
                                 dir.File("pairs.txt"),
                             &out),
            1);
  EXPECT_NE(out.find("line 2: unknown image 'missing.png'"), std::string::npos)
      << out;

  // No colmap program.
  EXPECT_EQ(test::RunCommand(L2m() + " reconstruct --image_path " + images +
                                 " --workspace_path " + dir.File("ws") +
                                 " --colmap_path /nonexistent/colmap",
                             &out),
            1);
  EXPECT_NE(out.find("was not found"), std::string::npos) << out;

  // A read-only database, a foreign database, an unknown matcher, a bad flag.
  ::chmod(db_path.c_str(), 0444);
  EXPECT_EQ(test::RunCommand(L2m() + " match --database_path " + db_path +
                                 " --image_path " + images,
                             &out),
            1);
  EXPECT_NE(out.find("read-only"), std::string::npos) << out;
  ::chmod(db_path.c_str(), 0644);
  std::ofstream(dir.File("foreign.db")) << std::string(2048, '\x01');
  EXPECT_EQ(
      test::RunCommand(L2m() + " match --database_path " +
                           dir.File("foreign.db") + " --image_path " + images,
                       &out),
      1);
  EXPECT_NE(out.find("not an SQLite database"), std::string::npos) << out;
  EXPECT_EQ(test::RunCommand(L2m() + " match --database_path " + db_path +
                                 " --image_path " + images +
                                 " --Matcher.type superglue",
                             &out),
            1);
  EXPECT_NE(out.find("superglue"), std::string::npos) << out;
  EXPECT_EQ(test::RunCommand(
                L2m() + " match --database_path " + db_path + " --Bogus.flag 1",
                &out),
            1);
  EXPECT_NE(out.find("Bogus.flag"), std::string::npos) << out;
  EXPECT_EQ(test::RunCommand(L2m() + " frobnicate", &out), 2);

  // A second matcher on the same database is refused (nothing overwritten).
  ASSERT_EQ(test::RunCommand(L2m() + " match --database_path " + db_path +
                                 " --image_path " + images +
                                 " --Matcher.type sift --log_level 1",
                             &out),
            0)
      << out;
  const int matched = CountRows(db_path, "matches");
  EXPECT_EQ(
      test::RunCommand(L2m() + " match --database_path " + db_path +
                           " --image_path " + images + " --Matcher.type flow",
                       &out),
      1);
  EXPECT_NE(out.find("already holds matches of matcher 'sift"),
            std::string::npos)
      << out;
  EXPECT_EQ(CountRows(db_path, "matches"), matched);
}

TEST(L2mProgram, HelpAndVersion) {
  std::string out;
  EXPECT_EQ(test::RunCommand(L2m() + " help", &out), 0);
  EXPECT_NE(out.find("reconstruct"), std::string::npos);
  EXPECT_EQ(test::RunCommand(L2m() + " match --help", &out), 0);
  EXPECT_NE(out.find("--Matcher.type"), std::string::npos);
  EXPECT_EQ(test::RunCommand(L2m() + " version", &out), 0);
  EXPECT_NE(out.find("LibTorch"), std::string::npos);
  EXPECT_NE(out.find("SQLite"), std::string::npos);
}

}  // namespace
}  // namespace l2m
