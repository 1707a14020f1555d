#pragma once

#include "l2m_core/train/lr_schedule.h"
#include "l2m_core/train/pair_source.h"
#include "l2m_core/train/robust_loss.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

// The matcher's trainer (RoMa's recipe, in LibTorch): symmetric batches of
// depth-supervised pairs, RoMa's RobustLosses at every scale, AdamW with
// separate encoder / decoder learning rates, warm-up + decay, gradient
// clipping, bf16/fp16 autocast on CUDA (dynamic loss scaling for fp16),
// gradient accumulation, periodic validation, JSON-lines logs, and
// checkpoints that resume exactly (model, optimiser, step, data position,
// RNG, loss scale). See docs/TRAINING.md.

namespace l2m {

class RegressionMatcherImpl;

struct TrainOptions {
  // Matcher graph (MatcherConfig::Preset name), e.g. l2m_s or l2m_tiny.
  std::string model = "l2m_s";
  // Run folder: checkpoint.pt, train_log.jsonl, weights exported at the end.
  std::string output_path;
  // Optional initial weights (safetensors / checkpoint of the same graph);
  // ignored when the run folder already holds a checkpoint (resume).
  std::string init_weights;
  // Image size of the batches (the pairs are resized to it if they differ).
  int image_size = 448;
  int64_t num_steps = 10000;  // optimiser steps of the whole run
  int batch_size = 8;         // pairs per forward (the batch is symmetric: 2x)
  int accumulation_steps = 1;
  // RoMa: decoder bs·1e-4/8, encoder bs·5e-6/8 (a pretrained VGG). l2m_s
  // trains its encoder from scratch, so both default to the same rate.
  double lr_decoder = 4e-4;
  double lr_encoder = 4e-4;
  double weight_decay = 0.01;
  LrScheduleOptions schedule;   // total_steps follows num_steps
  double clip_grad_norm = 1.0;  // 0 = off (RoMa 0.01 unscaled; GIM 0.5)
  // fp32, or CUDA autocast in bf16 / fp16 (loss in fp32; fp16 with dynamic
  // loss scaling).
  std::string precision = "fp32";
  std::string device = "cpu";
  bool freeze_encoder = false;
  uint64_t seed = 0;
  int num_workers = 2;  // data threads
  int64_t log_every = 10;
  int64_t checkpoint_every = 500;
  int64_t validate_every = 500;
  int validation_pairs = 32;
  // Wall-clock budget of this invocation in seconds (0 = none): the run
  // saves a checkpoint and returns when it is spent, to be resumed later.
  double time_budget_s = 0;
  // CPU: deterministic algorithms (bit-identical resume is tested on CPU).
  bool deterministic = false;
  // CPU: oneDNN convolutions. Off by default: their backward pass converts
  // layouts on every call and ran 3.6x slower than the native kernels on the
  // tiny graph (trainer_test). Process-wide setting.
  bool cpu_onednn = false;
  RobustLossOptions loss;

  void Check() const;  // std::invalid_argument naming the option
};

struct ValidationResult {
  int64_t pairs = 0;
  double epe_px = 0;  // mean end-point error over GT-valid cells
  double pck_1 = 0, pck_3 = 0, pck_5 = 0;
  double valid_fraction = 0;
  // Certainty against GT validity: mean on valid / invalid cells, the
  // binary cross-entropy, and the expected calibration error (10 bins).
  double certainty_valid = 0, certainty_invalid = 0;
  double certainty_bce = 0, certainty_ece = 0;
};

struct StepStats {
  int64_t step = 0;  // after the update
  double loss = 0;
  std::vector<std::pair<std::string, double>> terms;
  double grad_norm = 0;
  double lr_decoder = 0, lr_encoder = 0;
  bool skipped = false;  // fp16: non-finite gradients, scale lowered
  double seconds = 0, data_wait_seconds = 0;
};

class Trainer {
 public:
  // `validation` may be null (no validation).
  Trainer(const TrainOptions& options,
          std::shared_ptr<const PairSource> train,
          std::shared_ptr<const PairSource> validation);
  ~Trainer();

  // Resumes from <output_path>/checkpoint.pt when it exists, then trains
  // until num_steps (or the time budget, or `max_steps` more steps when
  // >= 0), logging, validating and checkpointing on the way; saves a
  // checkpoint when it stops. Returns the number of steps taken now.
  int64_t Run(int64_t max_steps = -1);

  // One optimiser step (accumulation_steps micro-batches).
  StepStats Step();
  ValidationResult Validate();

  // Exact training state; written atomically (temporary file + rename).
  void SaveCheckpoint(const std::string& path) const;
  // Throws std::runtime_error naming the file when it is missing, corrupt
  // or from another model / batch layout.
  void LoadCheckpoint(const std::string& path);
  // Inference weights (the module's state dict) as safetensors, with the
  // preset and the training step in the metadata; fp16 halves the size.
  void ExportWeights(const std::string& path, bool half) const;

  int64_t step() const;
  int64_t pairs_consumed() const;
  RegressionMatcherImpl& model();
  const TrainOptions& options() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Options from `--Train.<name> value` pairs (both the `l2m train` command
// and the standalone `l2m_train` program use it); unknown names are errors.
// Also accepts --Train.loss.ce_weight etc. and --Train.schedule.kind.
void SetTrainOption(TrainOptions* options,
                    const std::string& name,
                    const std::string& value);
std::string TrainOptionsHelp();

}  // namespace l2m
