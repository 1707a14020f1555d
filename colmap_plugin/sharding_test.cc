#include "colmap_plugin/sharding.h"

#include "colmap_plugin/shard_env.h"
#include "l2m_core/util/file.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace l2m {
namespace {

namespace fs = std::filesystem;

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ShardEnv, ParsesShardSpec) {
  const ShardSpec s = ParseShardSpec("2/5");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_THROW(ParseShardSpec("5/5"), std::invalid_argument);
  EXPECT_THROW(ParseShardSpec("1"), std::invalid_argument);
  EXPECT_THROW(ParseShardSpec("a/3"), std::invalid_argument);
  EXPECT_THROW(ParseShardSpec("0/0"), std::invalid_argument);
  EXPECT_THROW(ParseShardSpec("-1/3"), std::invalid_argument);
}

TEST(ShardEnv, ReadsSlurmAndMpi) {
  ShardSpec s = ShardFromEnvironment(FakeEnv({}));
  EXPECT_EQ(s.index, 0);
  EXPECT_EQ(s.count, 1);
  // Array 10-16 (7 tasks): task 12 is index 2.
  s = ShardFromEnvironment(FakeEnv({{"SLURM_ARRAY_TASK_ID", "12"},
                                    {"SLURM_ARRAY_TASK_MIN", "10"},
                                    {"SLURM_ARRAY_TASK_COUNT", "7"},
                                    {"SLURM_PROCID", "0"}}));
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 7);
  EXPECT_EQ(s.source, "slurm array");
  // A batch script (no step) with --ntasks 4 is still one process.
  s = ShardFromEnvironment(
      FakeEnv({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}}));
  EXPECT_EQ(s.count, 1);
  // srun tasks.
  s = ShardFromEnvironment(FakeEnv(
      {{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_STEP_ID", "0"}}));
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(s.source, "srun");
  // Open MPI wins over srun's variables; PMI (MPICH) works too.
  s = ShardFromEnvironment(FakeEnv({{"OMPI_COMM_WORLD_RANK", "1"},
                                    {"OMPI_COMM_WORLD_SIZE", "2"},
                                    {"SLURM_PROCID", "0"},
                                    {"SLURM_NTASKS", "1"},
                                    {"SLURM_STEP_ID", "0"}}));
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 2);
  EXPECT_EQ(s.source, "mpi");
  s = ShardFromEnvironment(FakeEnv({{"PMI_RANK", "5"}, {"PMI_SIZE", "8"}}));
  EXPECT_EQ(s.index, 5);
  EXPECT_EQ(s.count, 8);
  // An array of 3 tasks x 2 MPI ranks = 6 shards.
  s = ShardFromEnvironment(FakeEnv({{"SLURM_ARRAY_TASK_ID", "2"},
                                    {"SLURM_ARRAY_TASK_COUNT", "3"},
                                    {"OMPI_COMM_WORLD_RANK", "1"},
                                    {"OMPI_COMM_WORLD_SIZE", "2"}}));
  EXPECT_EQ(s.index, 5);
  EXPECT_EQ(s.count, 6);
  EXPECT_THROW(ShardFromEnvironment(FakeEnv({{"SLURM_ARRAY_TASK_ID", "1"}})),
               std::invalid_argument);
  EXPECT_THROW(ShardFromEnvironment(FakeEnv({{"OMPI_COMM_WORLD_RANK", "2"},
                                             {"OMPI_COMM_WORLD_SIZE", "2"}})),
               std::invalid_argument);
  EXPECT_THROW(ShardFromEnvironment(FakeEnv({{"PMI_RANK", "x"}})),
               std::invalid_argument);
}

TEST(ShardEnv, OneGpuPerTask) {
  EXPECT_EQ(
      GpuForTask(
          FakeEnv({{"CUDA_VISIBLE_DEVICES", "3"}, {"SLURM_LOCALID", "1"}}), 8),
      "");  // Slurm's choice is kept.
  EXPECT_EQ(GpuForTask(FakeEnv({{"OMPI_COMM_WORLD_LOCAL_RANK", "5"}}), 4), "1");
  EXPECT_EQ(GpuForTask(FakeEnv({{"SLURM_LOCALID", "2"}}), 8), "2");
  EXPECT_EQ(GpuForTask(FakeEnv({{"SLURM_LOCALID", "2"}}), 0), "");
  EXPECT_EQ(GpuForTask(FakeEnv({}), 8), "");
}

// A dense matcher whose matches depend only on the image ids.
class FakeDenseMatcher : public Matcher {
 public:
  std::string Name() const override { return "fake"; }
  bool IsDense() const override { return true; }
  PairMatches MatchDense(const MatcherImage& a,
                         const MatcherImage& b) override {
    PairMatches m;
    const int n = static_cast<int>((a.image_id * 7 + b.image_id) % 5) + 1;
    for (int i = 0; i < n; ++i) {
      m.Add(a.image_id + i, b.image_id * 0.5f + i, i, i * 2.f, 0.1f * i);
    }
    ++num_calls;
    return m;
  }
  int num_calls = 0;
};

struct Fixture {
  test::TempDir dir;
  std::string images = dir.File("images");
  std::string db_path = dir.File("master.db");
  std::vector<ImagePair> pairs;

  Fixture() {
    fs::create_directories(images);
    Database db(db_path, Database::Mode::kCreate);
    const camera_t cam = db.WriteCamera({0, 0, 8, 8, {10, 4, 4}, false});
    std::vector<DbImage> ims;
    for (int i = 0; i < 9; ++i) {
      const std::string name = "im" + std::to_string(i) + ".png";
      cv::imwrite(images + "/" + name, cv::Mat(8, 8, CV_8UC3, cv::Scalar(i)));
      ims.push_back({db.WriteImage({0, name, cam}), name, cam});
    }
    pairs = ExhaustivePairs(ims);  // 36 pairs.
  }

  MatchPlan Plan(const std::string& name, int chunk_size) {
    Database db(db_path, Database::Mode::kReadOnly);
    PlanOptions options;
    options.chunk_size = chunk_size;
    return WritePlan(dir.File(name), db, images, pairs, options);
  }
  // Merges into a fresh copy of the master database; returns the digest.
  std::string MergeCopy(const MatchPlan& plan, const std::string& copy) {
    fs::copy_file(db_path, dir.File(copy));
    Database db(dir.File(copy), Database::Mode::kReadWrite);
    MergeShards(plan, &db);
    EXPECT_EQ(db.QueryInt("SELECT COUNT(*) FROM l2m_raw_matches"), 36);
    return RawMatchesDigest(db);
  }
};

TEST(Sharding, PlanIsFixedAndRerunnable) {
  Fixture f;
  const MatchPlan plan = f.Plan("plan", 10);
  EXPECT_EQ(plan.num_pairs, 36);
  EXPECT_EQ(plan.num_chunks, 4);
  EXPECT_EQ(plan.ChunkEnd(3), 36);
  EXPECT_EQ(ReadPlanPairs(plan, 0, 36), f.pairs);
  EXPECT_EQ(ReadPlanPairs(plan, 30, 40).size(), 6u);
  EXPECT_EQ(plan.ChunksOfShard({1, 3, ""}), (std::vector<int64_t>{1}));
  EXPECT_EQ(plan.ChunksOfShard({0, 3, ""}), (std::vector<int64_t>{0}));
  EXPECT_EQ(plan.ChunksOfShard({2, 3, ""}), (std::vector<int64_t>{2, 3}));
  const MatchPlan again = f.Plan("plan", 10);
  EXPECT_EQ(again.plan_id, plan.plan_id);
  const MatchPlan read = ReadPlan(f.dir.File("plan"));
  EXPECT_EQ(read.plan_id, plan.plan_id);
  EXPECT_EQ(ReadPlanImages(read).size(), 9u);

  // Another plan over existing chunk files is refused unless overwrite.
  FakeDenseMatcher m;
  MatchShard(plan, {0, 1, ""}, &m, {});
  EXPECT_THROW(f.Plan("plan", 7), std::runtime_error);
  Database db(f.db_path, Database::Mode::kReadOnly);
  PlanOptions overwrite;
  overwrite.chunk_size = 7;
  overwrite.overwrite = true;
  const MatchPlan other =
      WritePlan(f.dir.File("plan"), db, f.images, f.pairs, overwrite);
  EXPECT_NE(other.plan_id, plan.plan_id);
  EXPECT_FALSE(FileExists(plan.ChunkPath(3)));
}

TEST(Sharding, PairsInImageBlockOrder) {
  std::vector<DbImage> images;
  for (image_t id = 1; id <= 5; ++id) images.push_back({id, "", 1});
  std::vector<ImagePair> pairs = ExhaustivePairs(images);
  SortPairsByImageBlocks(images, 2, &pairs);
  const std::vector<ImagePair> expected = {{1, 2},
                                           {1, 3},
                                           {1, 4},
                                           {2, 3},
                                           {2, 4},
                                           {1, 5},
                                           {2, 5},
                                           {3, 4},
                                           {3, 5},
                                           {4, 5}};
  EXPECT_EQ(pairs, expected);
}

TEST(Sharding, SameDatabaseWhateverTheWorkers) {
  Fixture f;
  const MatchPlan one = f.Plan("one", 5);
  FakeDenseMatcher m;
  ShardMatchSummary s = MatchShard(one, {0, 1, ""}, &m, {});
  EXPECT_EQ(s.num_chunks, 8);
  EXPECT_EQ(s.num_pairs, 36);
  EXPECT_EQ(m.num_calls, 36);
  // Rerun: nothing to do.
  s = MatchShard(one, {0, 1, ""}, &m, {});
  EXPECT_EQ(s.num_done_before, 8);
  EXPECT_EQ(m.num_calls, 36);
  const std::string reference = f.MergeCopy(one, "one.db");

  // Three workers, then a "crash": two chunk files lost and a temporary file
  // of a dead process left behind; resumed by two workers.
  const MatchPlan three = f.Plan("three", 5);
  for (int i = 0; i < 3; ++i) MatchShard(three, {i, 3, ""}, &m, {});
  fs::remove(three.ChunkPath(2));
  fs::remove(three.ChunkPath(6));
  std::ofstream(three.ChunkPath(2) + ".tmp.nohost.999999") << "partial";
  EXPECT_THROW(f.MergeCopy(three, "early.db"), std::runtime_error);
  int64_t redone = 0;
  for (int i = 0; i < 2; ++i)
    redone += MatchShard(three, {i, 2, ""}, &m, {}).num_pairs;
  EXPECT_EQ(redone, 10);
  EXPECT_EQ(f.MergeCopy(three, "three.db"), reference);

  // Merging twice adds nothing and keeps one row per pair.
  Database db(f.dir.File("three.db"), Database::Mode::kReadWrite);
  const MergeSummary again = MergeShards(three, &db);
  EXPECT_EQ(again.num_merged, 0);
  EXPECT_EQ(again.num_already_merged, 8);
  EXPECT_EQ(db.QueryInt("SELECT COUNT(DISTINCT pair_id) FROM l2m_raw_matches"),
            36);
  EXPECT_EQ(RawMatchesDigest(db), reference);
  EXPECT_EQ(db.ReadMetadata("matcher").value_or(""), "fake");
  // What was merged reads back as the matcher wrote it.
  const RawPairMatches raw = db.ReadRawMatches(1, 2);
  EXPECT_EQ(raw.size(), static_cast<size_t>((1 * 7 + 2) % 5 + 1));
}

std::string MergeError(const MatchPlan& plan, const std::string& db_path) {
  Database db(db_path, Database::Mode::kReadWrite);
  try {
    MergeShards(plan, &db);
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(db.QueryInt("SELECT COUNT(*) FROM l2m_raw_matches"), 0)
        << "a rejected merge wrote something";
    return e.what();
  }
  return "";
}

TEST(Sharding, DefectiveShardsAreRejected) {
  Fixture f;
  const MatchPlan plan = f.Plan("plan", 10);
  FakeDenseMatcher m;
  MatchShard(plan, {0, 1, ""}, &m, {});
  const std::string chunk1 = plan.ChunkPath(1);
  const std::string saved = ReadBinaryFile(chunk1);

  // Truncated.
  std::ofstream(chunk1, std::ios::binary | std::ios::trunc)
      << saved.substr(0, saved.size() / 2);
  std::string error = MergeError(plan, f.db_path);
  EXPECT_NE(error.find("Shard '" + chunk1 + "'"), std::string::npos) << error;
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  // Cut inside the header.
  std::ofstream(chunk1, std::ios::binary | std::ios::trunc)
      << saved.substr(0, 50);
  error = MergeError(plan, f.db_path);
  EXPECT_NE(error.find("not an SQLite file"), std::string::npos) << error;

  // Damaged data, a missing pair, an unfinished file: edited in place.
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"UPDATE l2m_raw_matches SET data = zeroblob(length(data)) WHERE "
       "pair_id = (SELECT MIN(pair_id) FROM l2m_raw_matches)",
       "fails its checksum"},
      {"DELETE FROM l2m_raw_matches WHERE pair_id = (SELECT MAX(pair_id) "
       "FROM l2m_raw_matches)",
       "holds 9 of the chunk's 10 pairs"},
      {"UPDATE l2m_shard SET value = '0' WHERE key = 'complete'",
       "is incomplete"}};
  for (const auto& [sql, expected] : edits) {
    std::ofstream(chunk1, std::ios::binary | std::ios::trunc) << saved;
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(chunk1.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
    error = MergeError(plan, f.db_path);
    EXPECT_NE(error.find("Shard '" + chunk1 + "' " + expected),
              std::string::npos)
        << error;
  }

  // A chunk file of another plan (foreign).
  const MatchPlan other = f.Plan("other", 12);
  MatchShard(other, {0, 1, ""}, &m, {});
  fs::copy_file(
      other.ChunkPath(1), chunk1, fs::copy_options::overwrite_existing);
  error = MergeError(plan, f.db_path);
  EXPECT_NE(error.find("belongs to another plan"), std::string::npos) << error;

  // Not an l2m shard at all.
  fs::copy_file(f.db_path, chunk1, fs::copy_options::overwrite_existing);
  error = MergeError(plan, f.db_path);
  EXPECT_NE(error.find("not an l2m shard"), std::string::npos) << error;

  // Matching again replaces the defective file; then the merge works.
  const ShardMatchSummary s = MatchShard(plan, {0, 2, ""}, &m, {});
  EXPECT_EQ(s.num_redone, 1);
  EXPECT_EQ(MergeError(plan, f.db_path), "");

  // A database with other images is not the plan's.
  const std::string stranger = f.dir.File("stranger.db");
  {
    Database db(stranger, Database::Mode::kCreate);
    db.WriteImage({0, "x.png", db.WriteCamera({0, 0, 8, 8, {1, 1, 1}, 0})});
  }
  error = MergeError(plan, stranger);
  EXPECT_NE(error.find("does not hold the images"), std::string::npos) << error;
}

TEST(Sharding, CapsMatchesPerPair) {
  Fixture f;
  const MatchPlan plan = f.Plan("plan", 36);
  FakeDenseMatcher m;
  ShardMatchOptions options;
  options.max_num_matches = 2;
  MatchShard(plan, {0, 1, ""}, &m, options);
  EXPECT_LE(CheckShardFile(plan, 0).num_matches, 72);
  const std::string db_path = f.dir.File("capped.db");
  fs::copy_file(f.db_path, db_path);
  Database db(db_path, Database::Mode::kReadWrite);
  MergeShards(plan, &db);
  EXPECT_EQ(db.QueryInt("SELECT MAX(rows) FROM l2m_raw_matches"), 2);
  // The two highest scores are kept (scores grow with the index).
  const RawPairMatches raw = db.ReadRawMatches(1, 2);  // 5 matches -> 2.
  ASSERT_EQ(raw.size(), 2u);
  EXPECT_FLOAT_EQ(raw.scores[0], 0.3f);
  EXPECT_FLOAT_EQ(raw.scores[1], 0.4f);
}

}  // namespace
}  // namespace l2m
