#include "colmap_plugin/database.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sys/stat.h>

namespace l2m {
namespace {

TEST(PairId, MatchesColmap) {
  // Verified against a COLMAP 3.8 database: pair (1, 2) -> 2147483649.
  EXPECT_EQ(ImagePairToPairId(1, 2), 2147483649ull);
  EXPECT_EQ(ImagePairToPairId(2, 1), 2147483649ull);
  const auto ids = PairIdToImagePair(ImagePairToPairId(7, 3));
  EXPECT_EQ(ids.first, 3u);
  EXPECT_EQ(ids.second, 7u);
}

TEST(Database, CreatesColmap38Layout) {
  test::TempDir dir;
  Database db(dir.File("db.db"), Database::Mode::kCreate);
  EXPECT_EQ(db.QueryInt("PRAGMA user_version"), 3800);
  EXPECT_EQ(db.QueryInt("SELECT COUNT(*) FROM pragma_table_info('images') "
                        "WHERE name='prior_tz'"),
            1);
  EXPECT_EQ(db.NumImages(), 0u);
}

TEST(Database, RoundTripsEverything) {
  test::TempDir dir;
  Database db(dir.File("db.db"), Database::Mode::kCreate);
  DbCamera cam;
  cam.width = 640;
  cam.height = 480;
  cam.params = {500, 320, 240, 0};
  const camera_t cam_id = db.WriteCamera(cam);
  const image_t a = db.WriteImage({0, "a.jpg", cam_id});
  const image_t b = db.WriteImage({0, "sub/b.jpg", cam_id});
  ASSERT_LT(a, b);
  EXPECT_EQ(db.ReadAllCameras().at(0).params, cam.params);
  EXPECT_EQ(db.ReadImageWithName("sub/b.jpg")->image_id, b);
  EXPECT_FALSE(db.ReadImageWithName("nope.jpg").has_value());

  std::vector<DbKeypoint> kps = {{1.5f, 2.5f, 3.0f, 0.5f},
                                 {10.f, 20.f, 1.f, 0.f}};
  db.WriteKeypoints(a, kps);
  const auto kps_read = db.ReadKeypoints(a);
  ASSERT_EQ(kps_read.size(), 2u);
  EXPECT_FLOAT_EQ(kps_read[0].x, 1.5f);
  EXPECT_NEAR(kps_read[0].scale, 3.0f, 1e-5);
  EXPECT_NEAR(kps_read[0].orientation, 0.5f, 1e-5);
  EXPECT_EQ(db.QueryInt("SELECT cols FROM keypoints"), 6);

  // Written as (b, a): stored swapped, read back in the caller's order.
  const std::vector<DbMatch> m = {{{0, 1}}, {{5, 0}}};
  db.WriteMatches(b, a, m);
  EXPECT_EQ(db.ReadMatches(b, a), m);
  const auto swapped = db.ReadMatches(a, b);
  EXPECT_EQ(swapped[1][0], 0u);
  EXPECT_EQ(swapped[1][1], 5u);
  EXPECT_TRUE(db.ExistsMatches(a, b));

  DbTwoViewGeometry g;
  g.config = 3;
  g.inlier_matches = m;
  g.F = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  db.WriteTwoViewGeometry(b, a, g);
  const auto g_ab = db.ReadTwoViewGeometry(a, b);
  EXPECT_EQ(g_ab.config, 3);
  EXPECT_EQ(g_ab.F, (std::vector<double>{1, 4, 7, 2, 5, 8, 3, 6, 9}));
  EXPECT_EQ(db.NumVerifiedPairs(2), 1u);
  EXPECT_EQ(db.NumVerifiedPairs(3), 0u);

  RawPairMatches raw;
  raw.xy1 = {1, 2, 3, 4};
  raw.xy2 = {5, 6, 7, 8};
  raw.scores = {0.5f, 0.25f};
  db.WriteRawMatches(b, a, raw);
  const auto raw_ba = db.ReadRawMatches(b, a);
  EXPECT_EQ(raw_ba.xy1, raw.xy1);
  EXPECT_EQ(raw_ba.xy2, raw.xy2);
  EXPECT_EQ(db.ReadRawMatches(a, b).xy1, raw.xy2);
  EXPECT_EQ(db.ReadRawMatchPairIds().size(), 1u);

  db.WriteMetadata("matcher", "flow");
  EXPECT_EQ(*db.ReadMetadata("matcher"), "flow");
}

TEST(Database, TransactionRollsBackWhenNotCommitted) {
  test::TempDir dir;
  Database db(dir.File("db.db"), Database::Mode::kCreate);
  const camera_t cam = db.WriteCamera({0, 2, 10, 10, {1, 5, 5, 0}, false});
  {
    Database::Transaction t(&db);
    db.WriteImage({0, "x.jpg", cam});
  }
  EXPECT_EQ(db.NumImages(), 0u);
  {
    Database::Transaction t(&db);
    db.WriteImage({0, "x.jpg", cam});
    t.Commit();
  }
  EXPECT_EQ(db.NumImages(), 1u);
}

TEST(Database, RejectsBadFiles) {
  test::TempDir dir;
  auto expect_error = [](const std::string& path,
                         Database::Mode mode,
                         const std::string& needle) {
    try {
      Database db(path, mode);
      FAIL() << "expected an error for " << path;
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_error(
      dir.File("missing.db"), Database::Mode::kReadWrite, "does not exist");

  const std::string garbage = dir.File("garbage.db");
  std::ofstream(garbage) << std::string(4096, 'x');
  expect_error(garbage, Database::Mode::kReadWrite, "not an SQLite database");

  const std::string foreign = dir.File("foreign.db");
  {
    Database db(foreign, Database::Mode::kCreate);
    db.Exec("DROP TABLE two_view_geometries");
  }
  expect_error(foreign, Database::Mode::kReadWrite, "not a COLMAP database");

  // A COLMAP >= 3.10 images table (no prior_* columns).
  const std::string newer = dir.File("newer.db");
  {
    Database db(newer, Database::Mode::kCreate);
    db.Exec(
        "DROP INDEX index_name; DROP TABLE images; CREATE TABLE images "
        "(image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT "
        "NULL UNIQUE, camera_id INTEGER NOT NULL); PRAGMA user_version=3012");
  }
  expect_error(newer, Database::Mode::kReadWrite, "newer COLMAP layout");

  const std::string readonly = dir.File("ro.db");
  { Database db(readonly, Database::Mode::kCreate); }
  ::chmod(readonly.c_str(), 0444);
  expect_error(readonly, Database::Mode::kReadWrite, "read-only");
  Database ro(readonly, Database::Mode::kReadOnly);
  EXPECT_EQ(ro.NumImages(), 0u);
}

}  // namespace
}  // namespace l2m
