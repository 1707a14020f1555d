#include "datasets/eval_command.h"
#include "l2m_core/util/file.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace l2m {
namespace {

int RunEval(std::vector<std::string> args) {
  args.insert(args.begin(), "eval");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return RunEvalCommand(static_cast<int>(argv.size()), argv.data());
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadBinaryFile(path));
}

// A few real ScanNet pairs (SuperGlue sample) with both matchers.
TEST(EvalCommand, ScanNetSamplePairs) {
  L2M_REQUIRE_SHARED(shared);
  test::TempDir dir;
  for (const std::string matcher : {"sift", "flow"}) {
    const std::string out = dir.File(matcher);
    ASSERT_EQ(RunEval({"--benchmark",
                       "scannet_pairs",
                       "--data_path",
                       shared + "/data/scannet_sample_superglue",
                       "--matcher",
                       matcher,
                       "--output_path",
                       out,
                       "--Eval.max_num_pairs",
                       "3",
                       "--Eval.num_worst_pairs",
                       "1"}),
              0);
    const nlohmann::json r = ReadJson(out + "/results.json");
    EXPECT_EQ(r["num_pairs"].get<int>(), 3);
    for (const char* key : {"auc@5", "auc@10", "auc@20"}) {
      EXPECT_GE(r[key].get<double>(), 0.0);
      EXPECT_LE(r[key].get<double>(), 100.0);
    }
    EXPECT_NE(r["protocol"].get<std::string>().find("short side 480"),
              std::string::npos);
    EXPECT_EQ(r["estimator_method"], "ransac");
    EXPECT_TRUE(std::filesystem::exists(out + "/curves.png"));
    EXPECT_TRUE(std::filesystem::exists(out + "/results.md"));
    EXPECT_EQ(r["worst_pairs"].size(), 1u);
  }
}

// Real homography pairs: SIFT should get most corners right.
TEST(EvalCommand, HomographyPairs) {
  L2M_REQUIRE_SHARED(shared);
  test::TempDir dir;
  const std::string out = dir.File("h");
  ASSERT_EQ(RunEval({"--benchmark",
                     "homography",
                     "--data_path",
                     shared + "/data/homography_homogr",
                     "--matcher",
                     "sift",
                     "--output_path",
                     out,
                     "--Eval.max_num_pairs",
                     "4",
                     "--Eval.estimator",
                     "lo-ransac"}),
            0);
  const nlohmann::json r = ReadJson(out + "/results.json");
  EXPECT_EQ(r["num_pairs"].get<int>(), 4);
  EXPECT_GT(r["auc@10px"].get<double>(), 30.0) << r.dump(2);
  EXPECT_NE(r["estimator"].get<std::string>().find("LO-RANSAC"),
            std::string::npos);
  // Resume: the second run matches nothing again and gives the same numbers.
  ASSERT_EQ(RunEval({"--benchmark",
                     "homography",
                     "--data_path",
                     shared + "/data/homography_homogr",
                     "--output_path",
                     out,
                     "--Eval.estimator",
                     "lo-ransac",
                     "--matcher",
                     "sift",
                     "--Eval.max_num_pairs",
                     "4"}),
            0);
  EXPECT_EQ(ReadJson(out + "/results.json")["auc@5px"], r["auc@5px"]);
}

TEST(EvalCommand, BadOptionsAreClear) {
  test::TempDir dir;
  try {
    RunEval({"--benchmark",
             "nope",
             "--data_path",
             dir.path(),
             "--output_path",
             dir.File("o")});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("megadepth1500"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(RunEval({"--benchmark",
                        "homography",
                        "--data_path",
                        dir.path(),
                        "--output_path",
                        dir.File("o"),
                        "--Eval.estimator",
                        "prosac"}),
               std::invalid_argument);
}

}  // namespace
}  // namespace l2m
