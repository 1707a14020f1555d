// Sharded matching on real engines, on one machine: one process, 2 Open MPI
// ranks (mpirun) and a local Slurm cluster (munge + slurmctld + slurmd
// started here, sbatch --array + a dependent merge job) must give the same
// merged database; a worker killed mid-chunk and resumed with another number
// of workers leaves no duplicates and no gaps; a truncated shard is rejected.

#include "colmap_plugin/colmap_runner.h"
#include "colmap_plugin/database.h"
#include "colmap_plugin/sharding.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <signal.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#ifndef L2M_SOURCE_DIR
#define L2M_SOURCE_DIR "."
#endif

namespace l2m {
namespace {

namespace fs = std::filesystem;

constexpr int kNumImages = 11;
constexpr int kNumPairs = kNumImages * (kNumImages - 1) / 2;  // 55

std::string L2m() { return test::BinaryPath("colmap_plugin/l2m"); }
std::string SlurmScript(const std::string& name) {
  return std::string(L2M_SOURCE_DIR) + "/scripts/slurm/" + name;
}

// A textured canvas seen through a window sliding a few pixels per frame.
void WriteFrames(const std::string& dir) {
  fs::create_directories(dir);
  const int width = 320, height = 240;
  cv::Mat canvas(height + 40, width + 16 * kNumImages, CV_8UC3);
  // Random coloured shapes: corners and blobs at many scales for SIFT.
  cv::RNG rng(21);
  canvas.setTo(cv::Scalar(128, 128, 128));
  for (int k = 0; k < 900; ++k) {
    const cv::Scalar colour(
        rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255));
    const cv::Point c(rng.uniform(0, canvas.cols), rng.uniform(0, canvas.rows));
    const int r = rng.uniform(2, 14);
    if (k % 2)
      cv::circle(canvas, c, r, colour, cv::FILLED);
    else
      cv::rectangle(
          canvas, c, c + cv::Point(r, rng.uniform(2, 14)), colour, cv::FILLED);
  }
  cv::GaussianBlur(canvas, canvas, cv::Size(0, 0), 0.8);
  for (int i = 0; i < kNumImages; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s/frame_%02d.png", dir.c_str(), i);
    cv::imwrite(name,
                canvas(cv::Rect(16 * i, 10 + (i % 3) * 5, width, height)));
  }
}

std::string Sh(const std::string& command, int expected_status = 0) {
  std::string out;
  const int status = test::RunCommand(command, &out);
  EXPECT_EQ(status, expected_status) << command << "\n" << out;
  return out;
}

std::string ReadTextFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string DigestOf(const std::string& db_path) {
  Database db(db_path, Database::Mode::kReadOnly);
  EXPECT_EQ(db.QueryInt("SELECT COUNT(*) FROM l2m_raw_matches"), kNumPairs);
  EXPECT_EQ(db.QueryInt("SELECT COUNT(DISTINCT pair_id) FROM l2m_raw_matches"),
            kNumPairs);
  EXPECT_GT(db.QueryInt("SELECT SUM(rows) FROM l2m_raw_matches"),
            kNumPairs * 20);
  return RawMatchesDigest(db);
}

class Distributed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    WriteFrames(Images());
    Sh(L2m() + " image_import --log_level 1 --database_path " +
       dir_->File("master.db") + " --image_path " + Images());
    // The reference: one process, one shard, all chunks.
    const std::string plan = NewPlan("one", 8);
    Sh(L2m() + " match --log_level 1 --Matcher.type sift --plan_path " + plan);
    const std::string out = Sh(L2m() + " merge --plan_path " + plan);
    reference_ = DigestOf(dir_->File("one.db"));
    EXPECT_NE(out.find("raw matches digest " + reference_), std::string::npos)
        << out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Images() { return dir_->File("images"); }
  // A copy of the master database and a plan over it, in folder `name`.
  static std::string NewPlan(const std::string& name, int chunk_size) {
    fs::copy_file(dir_->File("master.db"), dir_->File(name + ".db"));
    const std::string plan = dir_->File(name);
    Sh(L2m() + " plan --log_level 1 --database_path " +
       dir_->File(name + ".db") + " --image_path " + Images() +
       " --plan_path " + plan + " --Plan.chunk_size " +
       std::to_string(chunk_size));
    return plan;
  }

  static test::TempDir* dir_;
  static std::string reference_;
};
test::TempDir* Distributed::dir_ = nullptr;
std::string Distributed::reference_;

TEST_F(Distributed, OneProcessThenTracksAndVerification) {
  ASSERT_FALSE(reference_.empty());
  // Rerunning every step changes nothing.
  const std::string plan = dir_->File("one");
  EXPECT_NE(Sh(L2m() + " plan --database_path " + dir_->File("one.db") +
               " --image_path " + Images() + " --plan_path " + plan +
               " --Plan.chunk_size 8")
                .find("7 chunks"),
            std::string::npos);
  EXPECT_NE(Sh(L2m() +
               " match --log_level 1 --Matcher.type sift "
               "--plan_path " +
               plan)
                .find("7 already done"),
            std::string::npos);
  EXPECT_NE(Sh(L2m() + " merge --plan_path " + plan).find("7 already merged"),
            std::string::npos);
  EXPECT_EQ(DigestOf(dir_->File("one.db")), reference_);
  // A different matcher over the same plan is refused.
  Sh(L2m() + " match --log_level 1 --Matcher.type flow --plan_path " + plan, 1);
  if (FindExecutable("colmap").empty())
    GTEST_SKIP() << "the colmap program is not installed (apt-get install "
                    "colmap): tracks/verify not run";
  Sh(L2m() + " tracks --log_level 1 --database_path " + dir_->File("one.db"));
  Sh(L2m() + " verify --log_level 1 --database_path " + dir_->File("one.db") +
     " --work_path " + dir_->path());
  Database db(dir_->File("one.db"), Database::Mode::kReadOnly);
  EXPECT_GT(db.NumVerifiedPairs(15), static_cast<size_t>(kNumPairs / 2));
}

TEST_F(Distributed, TwoMpiRanksGiveTheSameDatabase) {
  if (FindExecutable("mpirun").empty())
    GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
  const std::string plan = NewPlan("mpi", 8);
  const std::string out = Sh(
      "mpirun --allow-run-as-root --oversubscribe -np 2 --mca btl self,vader " +
      L2m() + " match --log_level 1 --Matcher.type sift --plan_path " + plan);
  EXPECT_NE(out.find("Shard 0/2 (mpi): 3 chunks"), std::string::npos) << out;
  EXPECT_NE(out.find("Shard 1/2 (mpi): 4 chunks"), std::string::npos) << out;
  Sh(L2m() + " merge --log_level 1 --plan_path " + plan);
  EXPECT_EQ(DigestOf(dir_->File("mpi.db")), reference_);
}

TEST_F(Distributed, SlurmArrayAndDependentMergeGiveTheSameDatabase) {
  for (const char* prog : {"slurmctld", "slurmd", "sbatch", "munged"}) {
    if (FindExecutable(prog).empty() &&
        !fs::exists(std::string("/usr/sbin/") + prog)) {
      GTEST_SKIP() << prog << " not found (apt-get install slurm-wlm munge)";
    }
  }
  const std::string plan = NewPlan("slurm", 8);
  const std::string cluster = dir_->File("cluster");
  std::string out;
  const int started = test::RunCommand(
      SlurmScript("local_cluster.sh") + " start " + cluster, &out);
  if (started == 3) GTEST_SKIP() << out;
  ASSERT_EQ(started, 0) << "local Slurm did not start:\n" << out;
  struct Stop {
    std::string cluster;
    ~Stop() {
      test::RunCommand(SlurmScript("local_cluster.sh") + " stop " + cluster);
    }
  } stop{cluster};
  const std::string env =
      "SLURM_CONF=" + cluster + "/slurm.conf L2M=" + L2m() +
      " MERGE_ARGS=--no-verify SBATCH_MATCH_ARGS=--cpus-per-task=1 "
      "SBATCH_MERGE_ARGS=--cpus-per-task=1 ";
  out = Sh(env + SlurmScript("submit.sh") + " " + plan +
           " 3 --log_level 1 --Matcher.type sift");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m, std::regex("match array job ([0-9]+).*merge job ([0-9]+)")))
      << out;
  const std::string merge_job = m[2];
  std::string state;
  for (int i = 0; i < 600; ++i) {
    test::RunCommand(
        "SLURM_CONF=" + cluster + "/slurm.conf scontrol show job " + merge_job,
        &out);
    std::smatch s;
    if (std::regex_search(out, s, std::regex("JobState=([A-Z_]+)")))
      state = s[1];
    if (state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" ||
        state == "TIMEOUT" || state == "NODE_FAIL")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::string logs;
  for (const auto& e : fs::directory_iterator(plan)) {
    if (e.path().extension() == ".out")
      logs += e.path().filename().string() + ":\n" +
              ReadTextFileOrEmpty(e.path().string());
  }
  ASSERT_EQ(state, "COMPLETED") << out << logs;
  EXPECT_NE(logs.find("Shard 2/3 (slurm array)"), std::string::npos) << logs;
  EXPECT_EQ(DigestOf(dir_->File("slurm.db")), reference_);
}

TEST_F(Distributed, KilledWorkerResumedByThreeWorkers) {
  const std::string plan = NewPlan("kill", 4);  // 14 chunks.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string log = dir_->File("kill.log");
    freopen(log.c_str(), "w", stdout);
    freopen(log.c_str(), "a", stderr);
    execl(L2m().c_str(),
          "l2m",
          "match",
          "--plan_path",
          plan.c_str(),
          "--shard",
          "0/2",
          "--Matcher.type",
          "sift",
          nullptr);
    _exit(127);
  }
  // Kill it while a chunk is half written (a temporary file exists) after at
  // least one chunk is complete.
  bool mid_chunk = false;
  for (int k = 0; k < 20000 && !mid_chunk; ++k) {
    int complete = 0, partial = 0;
    for (const auto& e : fs::directory_iterator(plan + "/shards")) {
      const std::string name = e.path().filename().string();
      if (name.find(".tmp.") != std::string::npos)
        ++partial;
      else
        ++complete;
    }
    mid_chunk = complete >= 1 && partial >= 1;
    if (!mid_chunk) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the worker finished before the kill";
  ASSERT_TRUE(mid_chunk);
  // A merge now is refused (chunks missing), and writes nothing.
  EXPECT_NE(Sh(L2m() + " merge --plan_path " + plan, 1).find("missing"),
            std::string::npos);
  // Resume with three workers (in parallel).
  std::string cmd;
  for (int i = 0; i < 3; ++i) {
    cmd += L2m() + " match --log_level 1 --Matcher.type sift --plan_path " +
           plan + " --shard " + std::to_string(i) + "/3 > " +
           dir_->File("resume" + std::to_string(i) + ".log") + " 2>&1 & ";
  }
  Sh("bash -c '" + cmd + " wait'");
  for (const auto& e : fs::directory_iterator(plan + "/shards")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos)
        << "stale temporary file " << e.path();
  }
  Sh(L2m() + " merge --log_level 1 --plan_path " + plan);
  EXPECT_EQ(DigestOf(dir_->File("kill.db")), reference_);
}

TEST_F(Distributed, TruncatedShardIsRejected) {
  const std::string plan = NewPlan("trunc", 8);
  Sh(L2m() + " match --log_level 1 --Matcher.type sift --plan_path " + plan);
  const std::string chunk = plan + "/shards/chunk-000003.db";
  fs::resize_file(chunk, fs::file_size(chunk) / 2);
  const std::string out = Sh(L2m() + " merge --plan_path " + plan, 1);
  EXPECT_NE(out.find("ERROR: Shard '" + chunk + "' is truncated"),
            std::string::npos)
      << out;
  {
    Database db(dir_->File("trunc.db"), Database::Mode::kReadOnly);
    EXPECT_EQ(db.QueryInt("SELECT COUNT(*) FROM l2m_raw_matches"), 0);
  }
  // Matching again replaces only the damaged chunk.
  EXPECT_NE(Sh(L2m() +
               " match --log_level 1 --Matcher.type sift "
               "--plan_path " +
               plan)
                .find("6 already done, 1 invalid ones matched again"),
            std::string::npos);
  Sh(L2m() + " merge --log_level 1 --plan_path " + plan);
  EXPECT_EQ(DigestOf(dir_->File("trunc.db")), reference_);
}

}  // namespace
}  // namespace l2m
