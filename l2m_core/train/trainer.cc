#include "l2m_core/train/trainer.h"

#include "l2m_core/geometry/gt_warp.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/regression_matcher.h"
#include "l2m_core/train/pair_prefetcher.h"
#include "l2m_core/util/string.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/safetensors.h"
#include "l2m_core/weights/state_dict.h"
#include "l2m_core/weights/strict_load.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop_requested{false};
extern "C" void RequestStop(int) { g_stop_requested = true; }

// A symmetric batch as the decoder emits it: [A→B; B→A].
struct Batch {
  torch::Tensor image_a, image_b;  // (B, 3, H, W) model input
  DepthPairBatch depth;            // 2B, symmetric
};

torch::Tensor InvertRigid(const torch::Tensor& T) {
  auto T64 = T.to(torch::kFloat64);
  auto R = T64.slice(1, 0, 3).slice(2, 0, 3);
  auto t = T64.slice(1, 0, 3).slice(2, 3, 4);
  auto inv = torch::zeros_like(T64);
  auto Rt = R.transpose(1, 2);
  inv.slice(1, 0, 3).slice(2, 0, 3).copy_(Rt);
  inv.slice(1, 0, 3).slice(2, 3, 4).copy_(-torch::matmul(Rt, t));
  inv.select(1, 3).select(1, 3).fill_(1);
  return inv.to(T.scalar_type());
}

std::string Json(double v) {
  if (!std::isfinite(v)) return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.7g", v);
  return buffer;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

}  // namespace

void TrainOptions::Check() const {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("Train." + what);
  };
  MatcherConfig config = MatcherConfig::Preset(model);  // throws on unknown
  if (!config.symmetric) fail("model must be a symmetric matcher");
  if (output_path.empty()) fail("output_path is required");
  if (image_size < config.CoarseStride() ||
      image_size % config.CoarseStride() != 0) {
    fail("image_size must be a positive multiple of " +
         std::to_string(config.CoarseStride()) + " for " + model);
  }
  if (num_steps < 1) fail("num_steps must be >= 1");
  if (batch_size < 1) fail("batch_size must be >= 1");
  if (accumulation_steps < 1) fail("accumulation_steps must be >= 1");
  if (!(lr_decoder > 0) || !(lr_encoder >= 0))
    fail("lr_decoder must be > 0 and lr_encoder >= 0");
  if (!(weight_decay >= 0)) fail("weight_decay must be >= 0");
  if (!(clip_grad_norm >= 0)) fail("clip_grad_norm must be >= 0");
  if (precision != "fp32" && precision != "bf16" && precision != "fp16")
    fail("precision must be fp32, bf16 or fp16");
  if (precision != "fp32" && device.rfind("cuda", 0) != 0)
    fail("precision " + precision + " needs a CUDA device (autocast)");
  if (num_workers < 1) fail("num_workers must be >= 1");
  if (log_every < 1 || checkpoint_every < 1 || validate_every < 1)
    fail("log_every, checkpoint_every and validate_every must be >= 1");
  if (validation_pairs < 0) fail("validation_pairs must be >= 0");
  if (time_budget_s < 0) fail("time_budget_s must be >= 0");
  LrScheduleOptions s = schedule;
  s.total_steps = num_steps;
  s.Check();
  loss.Check();
}

class Trainer::Impl {
 public:
  Impl(const TrainOptions& options,
       std::shared_ptr<const PairSource> train,
       std::shared_ptr<const PairSource> validation)
      : options_(options),
        train_(std::move(train)),
        validation_(std::move(validation)),
        device_(options.device) {
    options_.Check();
    options_.schedule.total_steps = options_.num_steps;
    if (!train_) throw std::invalid_argument("Trainer: no training data");
    if (device_.is_cuda() && !torch::cuda::is_available()) {
      throw std::runtime_error("Train.device is '" + options_.device +
                               "' but no CUDA device is available");
    }
    if (options_.deterministic) {
      at::globalContext().setDeterministicAlgorithms(true, false);
    }
    if (!device_.is_cuda() && !options_.cpu_onednn) {
      at::globalContext().setUserEnabledMkldnn(false);
    }
    config_ = MatcherConfig::Preset(options_.model);
    config_.coarse_h = config_.coarse_w = options_.image_size;
    config_.upsample_h = config_.upsample_w = options_.image_size;
    // Weight initialisation follows the seed.
    torch::manual_seed(options_.seed);
    model_ = RegressionMatcher(config_);
    if (!options_.init_weights.empty()) {
      LoadStateDictStrict(*model_,
                          ReadModelWeights(options_.init_weights),
                          options_.init_weights);
    }
    model_->to(device_);
    if (device_.is_cuda()) {
      at::globalContext().setLinalgPreferredBackend(
          at::LinalgBackend::Cusolver);
    }

    std::vector<torch::Tensor> encoder_params, decoder_params;
    for (auto& p : model_->encoder()->parameters()) {
      if (options_.freeze_encoder) {
        p.set_requires_grad(false);
      } else {
        encoder_params.push_back(p);
      }
    }
    for (auto& p : model_->decoder()->parameters()) decoder_params.push_back(p);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decoder_params,
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(options_.lr_decoder)
                                .weight_decay(options_.weight_decay)));
    if (!encoder_params.empty()) {
      groups.emplace_back(encoder_params,
                          std::make_unique<torch::optim::AdamWOptions>(
                              torch::optim::AdamWOptions(options_.lr_encoder)
                                  .weight_decay(options_.weight_decay)));
    }
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        groups,
        torch::optim::AdamWOptions(options_.lr_decoder)
            .weight_decay(options_.weight_decay));
    for (const auto& group : optimizer_->param_groups()) {
      for (const auto& p : group.params()) params_.push_back(p);
    }
  }

  // ---- data ---------------------------------------------------------------

  void StartData() {
    prefetcher_ = std::make_unique<PairPrefetcher>(
        train_,
        options_.num_workers,
        options_.num_workers * 2 + options_.batch_size,
        pairs_consumed_);
  }

  Batch Collate(const std::vector<TrainingPair>& pairs) const {
    std::vector<torch::Tensor> ia, ib, da, db, ka, kb, t;
    for (const TrainingPair& p : pairs) {
      const int64_t s = options_.image_size;
      auto check = [&](const torch::Tensor& x, const char* what) {
        if (!x.defined() || x.size(-1) != s || x.size(-2) != s) {
          throw std::runtime_error("training pair '" + p.name + "': " + what +
                                   " is not " + std::to_string(s) + "x" +
                                   std::to_string(s) + " (Train.image_size)");
        }
      };
      check(p.image_a, "image_a");
      check(p.image_b, "image_b");
      check(p.depth_a, "depth_a");
      check(p.depth_b, "depth_b");
      ia.push_back(p.image_a);
      ib.push_back(p.image_b);
      da.push_back(p.depth_a);
      db.push_back(p.depth_b);
      ka.push_back(p.calibration_a);
      kb.push_back(p.calibration_b);
      t.push_back(p.cam2_from_cam1);
    }
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    auto to_dev = [&](std::vector<torch::Tensor>& v) {
      return torch::stack(v).to(f32).to(device_);
    };
    Batch b;
    b.image_a = Normalize(to_dev(ia));
    b.image_b = Normalize(to_dev(ib));
    auto dA = to_dev(da), dB = to_dev(db), KA = to_dev(ka), KB = to_dev(kb);
    auto T = to_dev(t);
    b.depth.depth_a = torch::cat({dA, dB});
    b.depth.depth_b = torch::cat({dB, dA});
    b.depth.calibration_a = torch::cat({KA, KB});
    b.depth.calibration_b = torch::cat({KB, KA});
    b.depth.cam2_from_cam1 = torch::cat({T, InvertRigid(T)});
    return b;
  }

  torch::Tensor Normalize(const torch::Tensor& images) const {
    if (!config_.normalize) return images;
    auto mean = torch::tensor({0.485, 0.456, 0.406}, images.options())
                    .view({1, 3, 1, 1});
    auto std = torch::tensor({0.229, 0.224, 0.225}, images.options())
                   .view({1, 3, 1, 1});
    return (images - mean) / std;
  }

  // ---- model --------------------------------------------------------------

  Correspondences Forward(const Batch& b) {
    const at::ScalarType dtype = options_.precision == "bf16"   ? at::kBFloat16
                                 : options_.precision == "fp16" ? at::kHalf
                                                                : at::kFloat;
    // Leaving the scope also drops autocast's cache of low-precision weights,
    // which are stale after every optimiser step.
    CudaAutocast autocast(dtype);
    Correspondences c = model_->Forward(b.image_a,
                                        b.image_b,
                                        /*upsample=*/false,
                                        nullptr,
                                        config_.ScaleFactorCoarse());
    return c;
  }

  RobustLossResult Loss(const Correspondences& c, const Batch& b) const {
    std::vector<ScaleCorrespondences> corresps;
    for (int s : config_.scales) {
      const ScaleEstimate& e = c.at(s);
      ScaleCorrespondences sc;
      sc.scale = s;
      sc.flow = e.flow.to(torch::kFloat32);
      sc.certainty = e.certainty.to(torch::kFloat32);
      if (e.gm_cls.defined()) {
        sc.gm_cls = e.gm_cls.to(torch::kFloat32);
        sc.gm_certainty = e.gm_certainty.to(torch::kFloat32);
      }
      corresps.push_back(sc);
    }
    return ComputeRobustLoss(corresps, b.depth, options_.loss);
  }

  void SetTrainMode() {
    model_->train();
    if (options_.freeze_encoder) model_->encoder()->eval();
  }

  StepStats Step() {
    const auto start = std::chrono::steady_clock::now();
    if (!prefetcher_) StartData();
    SetTrainMode();
    optimizer_->zero_grad();
    StepStats stats;
    const bool fp16 = options_.precision == "fp16";
    std::map<std::string, double> term_sums;
    std::vector<std::string> term_order;
    for (int m = 0; m < options_.accumulation_steps; ++m) {
      std::vector<TrainingPair> pairs;
      for (int i = 0; i < options_.batch_size; ++i) {
        double waited = 0;
        pairs.push_back(prefetcher_->Next(&waited));
        stats.data_wait_seconds += waited;
      }
      pairs_consumed_ += options_.batch_size;
      Batch batch = Collate(pairs);
      Correspondences c = Forward(batch);
      RobustLossResult loss = Loss(c, batch);
      torch::Tensor objective = loss.total / options_.accumulation_steps;
      if (fp16) objective = objective * loss_scale_;
      objective.backward();
      // One device-to-host copy for the total and every term, not one
      // synchronising item() each.
      std::vector<torch::Tensor> values = {loss.total.detach()};
      for (const auto& term : loss.terms) values.push_back(term.second);
      const torch::Tensor host =
          torch::stack(values).to(torch::kCPU, torch::kFloat64);
      const double* v = host.data_ptr<double>();
      stats.loss += v[0] / options_.accumulation_steps;
      for (size_t k = 0; k < loss.terms.size(); ++k) {
        const std::string& key = loss.terms[k].first;
        if (!term_sums.count(key)) term_order.push_back(key);
        term_sums[key] += v[k + 1] / options_.accumulation_steps;
      }
    }
    for (const auto& key : term_order) {
      stats.terms.emplace_back(key, term_sums[key]);
    }
    if (fp16) {
      torch::NoGradGuard no_grad;
      for (auto& p : params_) {
        if (p.grad().defined()) p.mutable_grad().div_(loss_scale_);
      }
    }
    // The total norm before clipping (what RoMa / GIM log).
    stats.grad_norm = torch::nn::utils::clip_grad_norm_(
        params_,
        options_.clip_grad_norm > 0 ? options_.clip_grad_norm
                                    : std::numeric_limits<double>::infinity());
    const double multiplier = LrMultiplier(options_.schedule, step_);
    stats.lr_decoder = options_.lr_decoder * multiplier;
    stats.lr_encoder = options_.lr_encoder * multiplier;
    auto& groups = optimizer_->param_groups();
    static_cast<torch::optim::AdamWOptions&>(groups[0].options())
        .lr(stats.lr_decoder);
    if (groups.size() > 1) {
      static_cast<torch::optim::AdamWOptions&>(groups[1].options())
          .lr(stats.lr_encoder);
    }
    if (std::isfinite(stats.grad_norm)) {
      optimizer_->step();
      if (fp16 && ++good_steps_ % 2000 == 0) loss_scale_ *= 2;
    } else {
      stats.skipped = true;
      if (fp16) {
        loss_scale_ = std::max(1.0, loss_scale_ * 0.5);
        good_steps_ = 0;
      }
    }
    ++step_;
    stats.step = step_;
    stats.seconds = Seconds(start);
    return stats;
  }

  // ---- validation -----------------------------------------------------------

  ValidationResult Validate() {
    ValidationResult r;
    if (!validation_ || options_.validation_pairs == 0) return r;
    torch::NoGradGuard no_grad;
    model_->eval();
    const int64_t n =
        std::min<int64_t>(options_.validation_pairs, validation_->Size());
    double epe_sum = 0, pck1 = 0, pck3 = 0, pck5 = 0, valid = 0, cells = 0;
    double cert_valid = 0, cert_invalid = 0, bce = 0;
    std::vector<double> bin_count(10, 0), bin_cert(10, 0), bin_label(10, 0);
    for (int64_t first = 0; first < n; first += options_.batch_size) {
      std::vector<TrainingPair> pairs;
      for (int64_t i = first; i < std::min(n, first + options_.batch_size);
           ++i) {
        pairs.push_back(validation_->Get(i));
      }
      Batch b = Collate(pairs);
      Correspondences c = Forward(b);
      const ScaleEstimate& fine = c.at(config_.scales.back());
      const int64_t H = fine.flow.size(2), W = fine.flow.size(3);
      DenseGtWarp gt = GetGtWarp(b.depth.depth_a,
                                 b.depth.depth_b,
                                 b.depth.cam2_from_cam1,
                                 b.depth.calibration_a,
                                 b.depth.calibration_b,
                                 H,
                                 W);
      auto flow = fine.flow.to(torch::kFloat64).permute({0, 2, 3, 1});
      auto d = flow - gt.warp;
      auto epe = torch::sqrt(torch::square(d.select(-1, 0) * (W / 2.0)) +
                             torch::square(d.select(-1, 1) * (H / 2.0)));
      auto is_valid = gt.prob > 0.5;
      auto epe_valid = epe.masked_select(is_valid);
      epe_sum += epe_valid.sum().item<double>();
      pck1 += (epe_valid < 1).sum().item<double>();
      pck3 += (epe_valid < 3).sum().item<double>();
      pck5 += (epe_valid < 5).sum().item<double>();
      valid += epe_valid.numel();
      cells += epe.numel();
      auto logit = fine.certainty.to(torch::kFloat64).select(1, 0);
      auto cert = logit.sigmoid();
      auto label = is_valid.to(torch::kFloat64);
      cert_valid += cert.masked_select(is_valid).sum().item<double>();
      cert_invalid += cert.masked_select(~is_valid).sum().item<double>();
      bce += torch::binary_cross_entropy_with_logits(
                 logit, label, {}, {}, at::Reduction::Sum)
                 .item<double>();
      auto bins = (cert * 10).floor().clamp(0, 9).to(torch::kLong).flatten();
      auto cert_flat = cert.flatten(), label_flat = label.flatten();
      // Per bin: count, sum of certainty, sum of labels; one copy to host.
      const torch::Tensor sums =
          torch::zeros({10, 3}, cert.options())
              .index_add_(
                  0,
                  bins,
                  torch::stack(
                      {torch::ones_like(cert_flat), cert_flat, label_flat}, 1))
              .cpu();
      auto acc = sums.accessor<double, 2>();
      for (int k = 0; k < 10; ++k) {
        bin_count[k] += acc[k][0];
        bin_cert[k] += acc[k][1];
        bin_label[k] += acc[k][2];
      }
      r.pairs += static_cast<int64_t>(pairs.size());
    }
    if (valid > 0) {
      r.epe_px = epe_sum / valid;
      r.pck_1 = pck1 / valid;
      r.pck_3 = pck3 / valid;
      r.pck_5 = pck5 / valid;
      r.certainty_valid = cert_valid / valid;
    }
    if (cells > valid) r.certainty_invalid = cert_invalid / (cells - valid);
    if (cells > 0) {
      r.valid_fraction = valid / cells;
      r.certainty_bce = bce / cells;
      double ece = 0;
      for (int k = 0; k < 10; ++k) {
        if (bin_count[k] > 0) {
          ece += std::abs(bin_cert[k] - bin_label[k]) / cells;
        }
      }
      r.certainty_ece = ece;
    }
    return r;
  }

  // ---- checkpoints
  // ------------------------------------------------------------

  std::vector<std::pair<std::string, torch::Tensor>> NamedState() const {
    std::vector<std::pair<std::string, torch::Tensor>> state;
    for (const auto& item : model_->named_parameters()) {
      state.emplace_back(item.key(), item.value());
    }
    for (const auto& item : model_->named_buffers()) {
      state.emplace_back(item.key(), item.value());
    }
    return state;
  }

  void SaveCheckpoint(const std::string& path) const {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string("l2m-train-checkpoint-1")));
    archive.write("model_preset", c10::IValue(options_.model));
    archive.write("layout", c10::IValue(Layout()));
    for (const auto& [name, tensor] : NamedState()) {
      archive.write("model." + name, tensor.detach().cpu());
    }
    torch::serialize::OutputArchive optimizer_archive;
    optimizer_->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("step", torch::tensor(step_, torch::kInt64));
    archive.write("pairs_consumed",
                  torch::tensor(pairs_consumed_, torch::kInt64));
    archive.write("loss_scale", torch::tensor(loss_scale_, torch::kFloat64));
    archive.write("good_steps", torch::tensor(good_steps_, torch::kInt64));
    at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();
    archive.write("rng_cpu", cpu_generator.get_state());
    const std::string tmp = path + ".tmp";
    archive.save_to(tmp);
    fs::rename(tmp, path);
  }

  // What must match for a resume: graph, size and batch layout.
  std::string Layout() const {
    std::ostringstream s;
    s << options_.model << " size " << options_.image_size << " batch "
      << options_.batch_size << "x" << options_.accumulation_steps
      << " freeze_encoder " << options_.freeze_encoder;
    return s.str();
  }

  void LoadCheckpoint(const std::string& path) {
    if (!fs::exists(path)) {
      throw std::runtime_error("checkpoint " + path + " does not exist");
    }
    torch::serialize::InputArchive archive;
    try {
      archive.load_from(path);
      c10::IValue format, preset, layout;
      archive.read("format", format);
      if (!format.isString() ||
          format.toStringRef() != "l2m-train-checkpoint-1") {
        throw std::runtime_error("not an l2m training checkpoint");
      }
      archive.read("model_preset", preset);
      archive.read("layout", layout);
      if (layout.toStringRef() != Layout()) {
        throw std::runtime_error("it was written for '" + layout.toStringRef() +
                                 "', this run is '" + Layout() + "'");
      }
      torch::NoGradGuard no_grad;
      for (auto& [name, tensor] : NamedState()) {
        torch::Tensor value;
        archive.read("model." + name, value);
        if (value.sizes() != tensor.sizes()) {
          throw std::runtime_error("model." + name + " has shape " +
                                   ShapeString(value.sizes().vec()));
        }
        tensor.copy_(value);
      }
      torch::serialize::InputArchive optimizer_archive;
      archive.read("optimizer", optimizer_archive);
      optimizer_->load(optimizer_archive);
      // A fresh tensor per key: reading into a defined tensor set_()s it.
      auto read = [&](const char* key) {
        torch::Tensor t;
        archive.read(key, t);
        return t;
      };
      step_ = read("step").item<int64_t>();
      pairs_consumed_ = read("pairs_consumed").item<int64_t>();
      loss_scale_ = read("loss_scale").item<double>();
      good_steps_ = read("good_steps").item<int64_t>();
      at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();
      cpu_generator.set_state(read("rng_cpu"));
    } catch (const c10::Error& e) {
      throw std::runtime_error("cannot resume from " + path +
                               ": corrupt or incomplete checkpoint (" +
                               e.what_without_backtrace() + ")");
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("cannot resume from " + path + ": " + e.what());
    }
    // The optimiser state follows the parameters' device.
    optimizer_->zero_grad();
    prefetcher_.reset();
  }

  void ExportWeights(const std::string& path, bool half) const {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [name, tensor] : NamedState()) {
      torch::Tensor t = tensor.detach().cpu();
      if (half && t.is_floating_point()) t = t.to(torch::kFloat16);
      tensors.emplace_back(name, t.contiguous());
    }
    WriteSafetensors(path,
                     tensors,
                     {{"l2m_preset", options_.model},
                      {"l2m_image_size", std::to_string(options_.image_size)},
                      {"l2m_step", std::to_string(step_)},
                      {"l2m_pairs", std::to_string(pairs_consumed_)}});
  }

  // ---- the loop
  // ---------------------------------------------------------------

  void Log(const std::string& line) {
    std::ofstream out(fs::path(options_.output_path) / "train_log.jsonl",
                      std::ios::app);
    out << line << "\n";
  }

  // After a resume, drops log lines of steps the checkpoint does not hold
  // (an interrupted run logged them; they will be redone).
  void TrimLog() {
    const fs::path path = fs::path(options_.output_path) / "train_log.jsonl";
    std::ifstream in(path);
    if (!in) return;
    std::vector<std::string> kept;
    std::string line;
    bool dropped = false;
    while (std::getline(in, line)) {
      const size_t at = line.find("\"step\":");
      const int64_t s = at == std::string::npos
                            ? 0
                            : std::strtoll(line.c_str() + at + 7, nullptr, 10);
      if (s <= step_) {
        kept.push_back(line);
      } else {
        dropped = true;
      }
    }
    in.close();
    if (!dropped) return;
    const fs::path tmp = path.string() + ".tmp";
    {
      std::ofstream out(tmp);
      for (const auto& l : kept) out << l << "\n";
    }
    fs::rename(tmp, path);
  }

  std::string FormatStats(const StepStats& s, double pairs_per_s) const {
    std::ostringstream o;
    o << "{\"kind\":\"train\",\"step\":" << s.step
      << ",\"pairs\":" << pairs_consumed_ << ",\"loss\":" << Json(s.loss)
      << ",\"grad_norm\":" << Json(s.grad_norm)
      << ",\"lr_decoder\":" << Json(s.lr_decoder)
      << ",\"lr_encoder\":" << Json(s.lr_encoder)
      << ",\"pairs_per_s\":" << Json(pairs_per_s)
      << ",\"data_wait_s\":" << Json(s.data_wait_seconds)
      << ",\"skipped\":" << (s.skipped ? "true" : "false");
    if (options_.precision == "fp16")
      o << ",\"loss_scale\":" << Json(loss_scale_);
    o << ",\"terms\":{";
    for (size_t i = 0; i < s.terms.size(); ++i) {
      o << (i ? "," : "") << "\"" << s.terms[i].first
        << "\":" << Json(s.terms[i].second);
    }
    o << "}}";
    return o.str();
  }

  std::string FormatValidation(const ValidationResult& v) const {
    std::ostringstream o;
    o << "{\"kind\":\"val\",\"step\":" << step_ << ",\"pairs\":" << v.pairs
      << ",\"epe_px\":" << Json(v.epe_px) << ",\"pck_1\":" << Json(v.pck_1)
      << ",\"pck_3\":" << Json(v.pck_3) << ",\"pck_5\":" << Json(v.pck_5)
      << ",\"valid_fraction\":" << Json(v.valid_fraction)
      << ",\"certainty_valid\":" << Json(v.certainty_valid)
      << ",\"certainty_invalid\":" << Json(v.certainty_invalid)
      << ",\"certainty_bce\":" << Json(v.certainty_bce)
      << ",\"certainty_ece\":" << Json(v.certainty_ece) << "}";
    return o.str();
  }

  void Checkpoint() {
    const fs::path dir(options_.output_path);
    SaveCheckpoint((dir / "checkpoint.pt").string());
    ExportWeights((dir / "weights_last.safetensors").string(), true);
  }

  int64_t Run(int64_t max_steps) {
    fs::create_directories(options_.output_path);
    const fs::path checkpoint =
        fs::path(options_.output_path) / "checkpoint.pt";
    if (fs::exists(checkpoint)) {
      LoadCheckpoint(checkpoint.string());
      TrimLog();
      std::fprintf(stderr,
                   "train: resumed %s at step %lld (%lld pairs)\n",
                   checkpoint.c_str(),
                   static_cast<long long>(step_),
                   static_cast<long long>(pairs_consumed_));
    }
    g_stop_requested = false;
    auto previous_term = std::signal(SIGTERM, RequestStop);
    auto previous_int = std::signal(SIGINT, RequestStop);
    const auto start = std::chrono::steady_clock::now();
    int64_t taken = 0;
    double window_s = 0;
    int64_t window_pairs = 0;
    try {
      while (step_ < options_.num_steps &&
             (max_steps < 0 || taken < max_steps)) {
        if (g_stop_requested) break;
        if (options_.time_budget_s > 0 &&
            Seconds(start) > options_.time_budget_s) {
          break;
        }
        StepStats s = Step();
        ++taken;
        window_s += s.seconds;
        window_pairs += options_.batch_size * options_.accumulation_steps;
        if (step_ % options_.log_every == 0 || step_ == 1) {
          const double rate = window_s > 0 ? window_pairs / window_s : 0;
          Log(FormatStats(s, rate));
          std::fprintf(stderr,
                       "train: step %lld/%lld loss %.4f grad %.3g lr %.2e "
                       "%.1f pairs/s (data wait %.0f%%)\n",
                       static_cast<long long>(step_),
                       static_cast<long long>(options_.num_steps),
                       s.loss,
                       s.grad_norm,
                       s.lr_decoder,
                       rate,
                       100 * s.data_wait_seconds / std::max(1e-9, s.seconds));
          window_s = 0;
          window_pairs = 0;
        }
        if (step_ % options_.validate_every == 0 ||
            step_ == options_.num_steps) {
          const ValidationResult v = Validate();
          if (v.pairs > 0) {
            Log(FormatValidation(v));
            std::fprintf(stderr,
                         "train: validation at step %lld: EPE %.2f px, "
                         "PCK@1/3/5 %.3f/%.3f/%.3f\n",
                         static_cast<long long>(step_),
                         v.epe_px,
                         v.pck_1,
                         v.pck_3,
                         v.pck_5);
          }
        }
        if (step_ % options_.checkpoint_every == 0) Checkpoint();
      }
    } catch (...) {
      std::signal(SIGTERM, previous_term);
      std::signal(SIGINT, previous_int);
      throw;
    }
    std::signal(SIGTERM, previous_term);
    std::signal(SIGINT, previous_int);
    if (taken > 0) Checkpoint();
    if (step_ >= options_.num_steps) {
      ExportWeights(
          (fs::path(options_.output_path) / "weights.safetensors").string(),
          true);
    }
    return taken;
  }

  TrainOptions options_;
  std::shared_ptr<const PairSource> train_, validation_;
  torch::Device device_;
  MatcherConfig config_;
  RegressionMatcher model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<PairPrefetcher> prefetcher_;
  int64_t step_ = 0;
  int64_t pairs_consumed_ = 0;
  double loss_scale_ = 65536;
  int64_t good_steps_ = 0;
};

Trainer::Trainer(const TrainOptions& options,
                 std::shared_ptr<const PairSource> train,
                 std::shared_ptr<const PairSource> validation)
    : impl_(std::make_unique<Impl>(
          options, std::move(train), std::move(validation))) {}
Trainer::~Trainer() = default;
int64_t Trainer::Run(int64_t max_steps) { return impl_->Run(max_steps); }
StepStats Trainer::Step() { return impl_->Step(); }
ValidationResult Trainer::Validate() { return impl_->Validate(); }
void Trainer::SaveCheckpoint(const std::string& path) const {
  impl_->SaveCheckpoint(path);
}
void Trainer::LoadCheckpoint(const std::string& path) {
  impl_->LoadCheckpoint(path);
}
void Trainer::ExportWeights(const std::string& path, bool half) const {
  impl_->ExportWeights(path, half);
}
int64_t Trainer::step() const { return impl_->step_; }
int64_t Trainer::pairs_consumed() const { return impl_->pairs_consumed_; }
RegressionMatcherImpl& Trainer::model() { return *impl_->model_; }
const TrainOptions& Trainer::options() const { return impl_->options_; }

// ---- options
// ------------------------------------------------------------------

namespace {

struct OptionSetter {
  const char* name;
  const char* help;
  std::function<void(TrainOptions*, const std::string&)> set;
};

int64_t ParseInt(const std::string& name, const std::string& v) {
  int64_t x = 0;
  if (!ParseInt64(v, &x)) {
    throw std::invalid_argument("--Train." + name + ": '" + v +
                                "' is not an integer");
  }
  return x;
}

double ParseDouble(const std::string& name, const std::string& v) {
  double x = 0;
  if (!l2m::ParseDouble(v, &x)) {
    throw std::invalid_argument("--Train." + name + ": '" + v +
                                "' is not a number");
  }
  return x;
}

bool ParseBool(const std::string& name, const std::string& v) {
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  throw std::invalid_argument("--Train." + name + ": '" + v +
                              "' is not a boolean (0/1/true/false)");
}

const std::vector<OptionSetter>& Setters() {
  using O = TrainOptions;
  using S = const std::string&;
  static const std::vector<OptionSetter> setters = {
      {"model",
       "matcher preset (l2m_s, l2m_tiny)",
       [](O* o, S v) { o->model = v; }},
      {"output_path",
       "run folder (checkpoint, log, weights)",
       [](O* o, S v) { o->output_path = v; }},
      {"init_weights",
       "initial weights of the same graph",
       [](O* o, S v) { o->init_weights = v; }},
      {"image_size",
       "square training resolution",
       [](O* o, S v) { o->image_size = ParseInt("image_size", v); }},
      {"num_steps",
       "optimiser steps of the whole run",
       [](O* o, S v) { o->num_steps = ParseInt("num_steps", v); }},
      {"batch_size",
       "pairs per forward",
       [](O* o, S v) { o->batch_size = ParseInt("batch_size", v); }},
      {"accumulation_steps",
       "forwards per optimiser step",
       [](O* o, S v) {
         o->accumulation_steps = ParseInt("accumulation_steps", v);
       }},
      {"lr_decoder",
       "AdamW learning rate of the decoder",
       [](O* o, S v) { o->lr_decoder = ParseDouble("lr_decoder", v); }},
      {"lr_encoder",
       "AdamW learning rate of the encoder",
       [](O* o, S v) { o->lr_encoder = ParseDouble("lr_encoder", v); }},
      {"weight_decay",
       "AdamW weight decay",
       [](O* o, S v) { o->weight_decay = ParseDouble("weight_decay", v); }},
      {"schedule",
       "linear | step | cosine | constant",
       [](O* o, S v) { o->schedule.kind = v; }},
      {"warmup_steps",
       "linear warm-up steps",
       [](O* o, S v) {
         o->schedule.warmup_steps = ParseInt("warmup_steps", v);
       }},
      {"warmup_start",
       "lr multiplier at step 0",
       [](O* o, S v) {
         o->schedule.warmup_start = ParseDouble("warmup_start", v);
       }},
      {"min_lr_ratio",
       "floor of the linear / cosine decay",
       [](O* o, S v) {
         o->schedule.min_ratio = ParseDouble("min_lr_ratio", v);
       }},
      {"clip_grad_norm",
       "gradient clipping norm (0 = off)",
       [](O* o, S v) { o->clip_grad_norm = ParseDouble("clip_grad_norm", v); }},
      {"precision",
       "fp32 | bf16 | fp16 (CUDA autocast)",
       [](O* o, S v) { o->precision = v; }},
      {"device", "cpu | cuda[:N]", [](O* o, S v) { o->device = v; }},
      {"freeze_encoder",
       "0/1: train the decoder only",
       [](O* o, S v) { o->freeze_encoder = ParseBool("freeze_encoder", v); }},
      {"seed",
       "weight initialisation and data seed",
       [](O* o, S v) { o->seed = ParseInt("seed", v); }},
      {"num_workers",
       "data threads",
       [](O* o, S v) { o->num_workers = ParseInt("num_workers", v); }},
      {"log_every",
       "steps between log lines",
       [](O* o, S v) { o->log_every = ParseInt("log_every", v); }},
      {"checkpoint_every",
       "steps between checkpoints",
       [](O* o, S v) {
         o->checkpoint_every = ParseInt("checkpoint_every", v);
       }},
      {"validate_every",
       "steps between validations",
       [](O* o, S v) { o->validate_every = ParseInt("validate_every", v); }},
      {"validation_pairs",
       "held-out pairs per validation",
       [](O* o, S v) {
         o->validation_pairs = ParseInt("validation_pairs", v);
       }},
      {"time_budget_s",
       "stop (with a checkpoint) after this many seconds",
       [](O* o, S v) { o->time_budget_s = ParseDouble("time_budget_s", v); }},
      {"deterministic",
       "0/1: deterministic algorithms",
       [](O* o, S v) { o->deterministic = ParseBool("deterministic", v); }},
      {"cpu_onednn",
       "0/1: oneDNN convolutions on the CPU",
       [](O* o, S v) { o->cpu_onednn = ParseBool("cpu_onednn", v); }},
      {"loss.ce_weight",
       "weight of the certainty BCE terms",
       [](O* o, S v) { o->loss.ce_weight = ParseDouble("loss.ce_weight", v); }},
      {"loss.alpha",
       "Barron alpha",
       [](O* o, S v) { o->loss.alpha = ParseDouble("loss.alpha", v); }},
      {"loss.c",
       "Barron scale c (x scale)",
       [](O* o, S v) { o->loss.c = ParseDouble("loss.c", v); }},
  };
  return setters;
}

}  // namespace

void SetTrainOption(TrainOptions* options,
                    const std::string& name,
                    const std::string& value) {
  for (const auto& s : Setters()) {
    if (name == s.name) {
      s.set(options, value);
      return;
    }
  }
  throw std::invalid_argument("unknown option --Train." + name +
                              " (see --help)");
}

std::string TrainOptionsHelp() {
  std::ostringstream o;
  const TrainOptions d;
  for (const auto& s : Setters()) {
    o << "  --Train." << s.name << "  " << s.help << "\n";
  }
  return o.str();
}

}  // namespace l2m
