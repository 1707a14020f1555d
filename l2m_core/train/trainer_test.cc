#include "l2m_core/train/trainer.h"

#include "l2m_core/geometry/gt_warp.h"
#include "l2m_core/model/regression_matcher.h"
#include "l2m_core/train/lr_schedule.h"
#include "l2m_core/train/pair_prefetcher.h"
#include "l2m_core/train/planar_pairs.h"
#include "l2m_core/weights/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace l2m {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() /
      ("l2m_trainer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

TrainOptions TinyOptions(const std::string& output) {
  TrainOptions o;
  o.model = "l2m_tiny";
  o.output_path = output;
  o.image_size = 64;
  o.batch_size = 1;
  o.num_workers = 1;
  o.log_every = 1000;
  o.checkpoint_every = 100000;
  o.validate_every = 100000;
  o.validation_pairs = 0;
  o.deterministic = true;
  return o;
}

std::shared_ptr<PlanarPairSource> Planar(int64_t n, uint64_t seed = 0) {
  PlanarPairOptions p;
  p.height = p.width = 64;
  p.num_pairs = n;
  p.seed = seed;
  return std::make_shared<PlanarPairSource>(p);
}

TEST(LrSchedule, WarmupThenDecay) {
  LrScheduleOptions o;
  o.total_steps = 100;
  o.warmup_steps = 10;
  o.warmup_start = 0.1;
  o.min_ratio = 0.2;
  EXPECT_DOUBLE_EQ(LrMultiplier(o, 0), 0.1);
  EXPECT_NEAR(LrMultiplier(o, 5), 0.55, 1e-12);
  EXPECT_DOUBLE_EQ(LrMultiplier(o, 10), 1.0);
  EXPECT_NEAR(LrMultiplier(o, 100), 0.2, 1e-12);  // linear floor
  o.kind = "step";
  EXPECT_DOUBLE_EQ(LrMultiplier(o, 89), 1.0);
  EXPECT_DOUBLE_EQ(LrMultiplier(o, 90), 0.1);  // RoMa: ×0.1 at 90 %
  o.kind = "cosine";
  EXPECT_NEAR(LrMultiplier(o, 55), 0.6, 1e-12);  // half-way: mid of [0.2, 1]
  o.kind = "exponential";
  EXPECT_THROW(o.Check(), std::invalid_argument);
}

// The planar pairs are exact: image B sampled at the GT warp of A's pixels
// reproduces image A.
TEST(PlanarPairs, GroundTruthIsPhotoConsistent) {
  auto source = Planar(4);
  for (int64_t i = 0; i < 4; ++i) {
    const TrainingPair p = source->Get(i);
    const DenseGtWarp gt = GetGtWarp(p.depth_a.unsqueeze(0),
                                     p.depth_b.unsqueeze(0),
                                     p.cam2_from_cam1.unsqueeze(0),
                                     p.calibration_a.unsqueeze(0),
                                     p.calibration_b.unsqueeze(0),
                                     64,
                                     64);
    const auto valid = gt.prob[0] > 0.5;
    ASSERT_GT(valid.sum().item<int64_t>(), 64 * 64 / 3) << p.name;
    namespace F = torch::nn::functional;
    auto sampled =
        F::grid_sample(p.image_b.unsqueeze(0),
                       gt.warp.to(torch::kFloat32),
                       F::GridSampleFuncOptions().align_corners(false));
    auto error = (sampled[0] - p.image_a).abs().amax(0).masked_select(valid);
    // Bilinear sampling of a texture whose lattice is >= 4 px: the residual
    // is interpolation error, a few grey levels; a wrong warp (e.g. off by a
    // pixel) gives errors of ~0.1.
    EXPECT_LT(error.mean().item<double>(), 0.02) << p.name;
    EXPECT_LT(error.quantile(0.95).item<double>(), 0.05) << p.name;
  }
  // Deterministic in the index.
  EXPECT_TRUE(torch::equal(source->Get(2).image_b, source->Get(2).image_b));
  EXPECT_FALSE(torch::equal(source->Get(1).image_b, source->Get(2).image_b));
}

TEST(PairPrefetcher, SameStreamForAnyWorkerCount) {
  auto source = Planar(5);
  PairPrefetcher one(source, 1, 2, 3), three(source, 3, 6, 3);
  for (int i = 0; i < 7; ++i) {
    const TrainingPair a = one.Next(), b = three.Next();
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.name, "planar_" + std::to_string((3 + i) % 5));
    EXPECT_TRUE(torch::equal(a.image_a, b.image_a));
  }
}

// The loss of one pair falls by more than 10x when the tiny graph overfits
// it, and the validation EPE on that pair falls with it.
TEST(Trainer, OverfitsOnePair) {
  torch::set_num_threads(2);
  TrainOptions o = TinyOptions(TempDir("overfit"));
  o.num_steps = 150;
  o.lr_decoder = o.lr_encoder = 3e-3;
  o.weight_decay = 0;
  o.schedule.kind = "constant";
  o.schedule.warmup_steps = 20;
  o.validation_pairs = 1;
  auto pair = Planar(1, 7);
  Trainer trainer(o, pair, pair);
  const ValidationResult before = trainer.Validate();
  double first = 0, last = 0;
  for (int64_t s = 0; s < o.num_steps; ++s) {
    const StepStats stats = trainer.Step();
    ASSERT_TRUE(std::isfinite(stats.loss)) << "step " << s;
    if (s < 5) first += stats.loss / 5;
    if (s >= o.num_steps - 10) last += stats.loss / 10;
  }
  const ValidationResult after = trainer.Validate();
  std::printf(
      "overfit: loss %.4f -> %.4f (%.1fx); EPE %.2f -> %.2f px, "
      "PCK@1 %.3f -> %.3f\n",
      first,
      last,
      first / last,
      before.epe_px,
      after.epe_px,
      before.pck_1,
      after.pck_1);
  EXPECT_GT(first / last, 10.0);
  EXPECT_LT(after.epe_px, before.epe_px / 2);
  EXPECT_GT(after.pck_3, before.pck_3);
  EXPECT_EQ(after.pairs, 1);
  EXPECT_GT(after.valid_fraction, 0.3);
  EXPECT_GE(after.certainty_ece, 0.0);
  EXPECT_LE(after.certainty_ece, 1.0);
}

std::vector<std::pair<std::string, torch::Tensor>> State(Trainer& t) {
  std::vector<std::pair<std::string, torch::Tensor>> s;
  for (const auto& item : t.model().named_parameters())
    s.emplace_back(item.key(), item.value().detach().clone());
  for (const auto& item : t.model().named_buffers())
    s.emplace_back(item.key(), item.value().detach().clone());
  return s;
}

// Train 6 steps in one go, or 3 + stop + resume from the checkpoint in a
// new trainer + 3: the weights (and BN statistics) are bit-identical.
TEST(Trainer, ResumeIsBitIdentical) {
  torch::set_num_threads(2);
  auto data = Planar(5, 3);
  TrainOptions o = TinyOptions(TempDir("resume_full"));
  o.num_steps = 6;
  o.batch_size = 2;
  o.accumulation_steps = 2;
  o.num_workers = 2;
  o.schedule.warmup_steps = 2;
  o.seed = 11;
  Trainer full(o, data, nullptr);
  EXPECT_EQ(full.Run(), 6);
  EXPECT_TRUE(fs::exists(fs::path(o.output_path) / "weights.safetensors"));

  o.output_path = TempDir("resume_split");
  {
    Trainer first(o, data, nullptr);
    EXPECT_EQ(first.Run(3), 3);
    EXPECT_EQ(first.pairs_consumed(), 12);
  }
  // A different seed must not matter: the checkpoint holds the weights.
  TrainOptions resumed_options = o;
  resumed_options.seed = 99;
  Trainer resumed(resumed_options, data, nullptr);
  EXPECT_EQ(resumed.Run(), 3);
  EXPECT_EQ(resumed.step(), 6);
  EXPECT_EQ(resumed.pairs_consumed(), 24);

  const auto a = State(full), b = State(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // The log has one line per logged step, none duplicated by the resume.
  std::ifstream log(fs::path(o.output_path) / "train_log.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) ++lines;
  EXPECT_EQ(lines, 1);  // step 1 only (log_every 1000)

  // Exported weights load into a fresh graph and hold the trained values.
  const StateDict exported = ReadSafetensors(
      (fs::path(o.output_path) / "weights.safetensors").string());
  EXPECT_EQ(exported.tensors.size(), a.size());
}

TEST(Trainer, RejectsForeignOrCorruptCheckpoints) {
  auto data = Planar(2);
  TrainOptions o = TinyOptions(TempDir("corrupt"));
  o.num_steps = 2;
  const std::string path = (fs::path(o.output_path) / "checkpoint.pt").string();
  {
    std::ofstream out(path);
    out << "not a checkpoint";
  }
  Trainer t(o, data, nullptr);
  try {
    t.Run();
    FAIL() << "a corrupt checkpoint was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  // A checkpoint of another batch layout is refused, naming both.
  fs::remove(path);
  {
    Trainer writer(o, data, nullptr);
    writer.Run(1);
  }
  TrainOptions other = o;
  other.batch_size = 2;
  Trainer reader(other, data, nullptr);
  try {
    reader.Run();
    FAIL() << "a checkpoint of another layout was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("batch 1x1"), std::string::npos)
        << e.what();
  }
}

TEST(Trainer, OptionsAndDataErrors) {
  TrainOptions o = TinyOptions(TempDir("options"));
  SetTrainOption(&o, "batch_size", "4");
  EXPECT_EQ(o.batch_size, 4);
  SetTrainOption(&o, "loss.ce_weight", "0.02");
  EXPECT_DOUBLE_EQ(o.loss.ce_weight, 0.02);
  EXPECT_THROW(SetTrainOption(&o, "batch", "4"), std::invalid_argument);
  EXPECT_THROW(SetTrainOption(&o, "batch_size", "four"), std::invalid_argument);
  o.image_size = 60;  // not a multiple of the CNN stride 16
  EXPECT_THROW(o.Check(), std::invalid_argument);
  o.image_size = 64;
  o.precision = "bf16";  // autocast needs CUDA
  EXPECT_THROW(o.Check(), std::invalid_argument);
  o.precision = "fp32";
  o.model = "l2m_xl";
  EXPECT_THROW(o.Check(), std::invalid_argument);
  // Pairs of the wrong size are named.
  o.model = "l2m_tiny";
  o.image_size = 32;
  Trainer t(o, Planar(2), nullptr);
  try {
    t.Step();
    FAIL() << "a 64x64 pair was accepted at image_size 32";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("planar_0"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace l2m
