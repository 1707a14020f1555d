#include "matcher_adapters/l2m_matcher.h"

#include "l2m_core/image/preprocess.h"
#include "l2m_core/match/warp_matches.h"
#include "l2m_core/model/config.h"
#include "l2m_core/model/match_graph.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/regression_matcher.h"
#include "l2m_core/util/cpu_allocator.h"
#include "l2m_core/util/string.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/safetensors.h"
#include "l2m_core/weights/strict_load.h"

#include <torch/torch.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace l2m {
namespace {

MatcherConfig ConfigFromPreset(const std::string& preset) {
  if (EndsWith(preset, ".json")) return LoadFixtureConfig(preset);
  return MatcherConfig::Preset(preset);
}

// Fills the defaults: the shipped weights, the preset of the weights'
// metadata, and checks that a DINOv2 preset has its ViT weights.
L2mMatcherOptions Resolve(L2mMatcherOptions options) {
  if (options.weights.empty()) {
    options.weights = ShippedL2mWeightsPath();
    if (!std::filesystem::exists(options.weights)) {
      throw std::runtime_error(
          "the shipped l2m model " + options.weights +
          " is missing: set L2M_MODELS_DIR to the folder holding "
          "l2m_s.safetensors, or pass --L2m.weights");
    }
  }
  if (options.preset.empty()) {
    options.preset = "l2m_560";
    if (EndsWith(options.weights, ".safetensors") &&
        std::filesystem::exists(options.weights)) {
      const SafetensorsHeader header = ReadSafetensorsHeader(options.weights);
      auto it = header.metadata.find("l2m_preset");
      if (it != header.metadata.end()) options.preset = it->second;
    }
  }
  const MatcherConfig config = ConfigFromPreset(options.preset);
  if (config.coarse_encoder == CoarseEncoder::kDinov2 &&
      options.dino_weights.empty()) {
    throw std::invalid_argument(
        "the l2m preset '" + options.preset +
        "' has a DINOv2 coarse encoder: give its weights with "
        "--L2m.dino_weights (checkpoint file or cached model name)");
  }
  return options;
}

}  // namespace

at::ScalarType ComputeDtype(const std::string& precision, bool cuda) {
  if (precision == "fp16" || (precision == "auto" && cuda)) return at::kHalf;
  if (precision == "bf16") return at::kBFloat16;
  return at::kFloat;
}

class L2mMatcher::Impl {
 public:
  explicit Impl(const L2mMatcherOptions& options)
      : options_(Resolve(options)),
        device_(options.device),
        dtype_(ComputeDtype(options.precision, device_.is_cuda())),
        model_(ConfigFromPreset(options_.preset)) {
    // LibTorch's default is 1 intra-op thread on Debian; 0 means all cores.
    at::set_num_threads(options_.num_threads > 0
                            ? options_.num_threads
                            : static_cast<int>(std::max(
                                  1u, std::thread::hardware_concurrency())));
    // Before the checkpoint is read, so that its tensors get huge pages too.
    if (options_.cpu_huge_pages && device_.is_cpu()) {
      UseHugePageCpuAllocator();
    }
    LoadStateDictStrict(
        *model_, ReadModelWeights(options_.weights), options_.weights);
    if (model_->dino()) {
      LoadStateDictStrict(*model_->dino(),
                          ReadModelWeights(options_.dino_weights),
                          options_.dino_weights);
    }
    model_->eval();
    model_->to(device_);
    // BN folding + channels-last (same results within rounding, see the
    // OptimizedForInference parity test): on the CPU too, where oneDNN's
    // depthwise convolutions run ~9x faster in NHWC.
    model_->OptimizeForInference(true);
    if (device_.is_cuda()) {
      // cuSOLVER's Cholesky for the GP (2x faster than MAGMA's, l2m bench).
      at::globalContext().setLinalgPreferredBackend(
          at::LinalgBackend::Cusolver);
      if (options_.cuda_graph) graph_ = std::make_unique<MatchGraph>(model_);
    }
  }

  PairMatches MatchDense(const MatcherImage& image1,
                         const MatcherImage& image2,
                         L2mDenseOutput* dense) {
    // One pair at a time: the model is shared and the GPU is the bottleneck.
    std::lock_guard<std::mutex> lock(mutex_);
    torch::NoGradGuard no_grad;
    const MatcherConfig& c = model_->config();
    const Prepared in1 = Prepare(image1), in2 = Prepare(image2);
    MatchResult result;
    {
      CudaAutocast autocast(dtype_);
      result = graph_ != nullptr
                   ? graph_->Match(in1.coarse, in2.coarse, in1.up, in2.up)
                   : model_->Match(in1.coarse, in2.coarse, in1.up, in2.up);
    }
    if (dense != nullptr) {
      const at::Tensor warp =
          result.warp.to(torch::kCPU).to(torch::kFloat).contiguous();
      const at::Tensor cert =
          result.certainty.to(torch::kCPU).to(torch::kFloat).contiguous();
      const int h = static_cast<int>(warp.size(0)),
                w2 = static_cast<int>(warp.size(1));
      cv::Mat(h, w2, CV_32FC4, warp.data_ptr<float>()).copyTo(dense->warp);
      cv::Mat(h, w2, CV_32F, cert.data_ptr<float>()).copyTo(dense->certainty);
    }
    SampleOptions sample;
    sample.sample_thresh = c.sample_thresh;
    sample.seed = options_.seed;
    // The fast KDE: the bit-exact CPU form took ~5 s per pair for 32 000
    // candidates on 2 cores, most of a CPU pair's time.
    sample.kde.exact = false;
    const PixelMatches m =
        SampleWarpToPixelMatches(result.warp,
                                 result.certainty,
                                 {image1.bgr.rows, image1.bgr.cols},
                                 {image2.bgr.rows, image2.bgr.cols},
                                 options_.num_samples,
                                 sample);
    const at::Tensor pa = m.points_a.to(torch::kCPU).contiguous(),
                     pb = m.points_b.to(torch::kCPU).contiguous();
    const at::Tensor cert =
        m.certainty.to(torch::kCPU).to(torch::kFloat).contiguous();
    PairMatches out;
    const float* a = pa.data_ptr<float>();
    const float* b = pb.data_ptr<float>();
    const float* s = cert.data_ptr<float>();
    for (int64_t i = 0; i < cert.numel(); ++i) {
      if (s[i] < options_.min_certainty) continue;
      out.Add(a[2 * i], a[2 * i + 1], b[2 * i], b[2 * i + 1], s[i]);
    }
    return out;
  }

 private:
  // An image resized for the model (coarse and upsample inputs), on the
  // model's device.
  struct Prepared {
    std::string key;
    at::Tensor coarse, up;
  };

  // The model inputs of `image`, from the cache of the last kPreparedImages
  // images when it holds them: an image takes part in many pairs, and its
  // PIL-exact resizes (~26 ms per pair of 560/864 inputs on 16 host cores,
  // as much as the model on an H100) would otherwise be redone for each.
  // Keyed by image id (MatcherImage: stable for caching), path and size;
  // images without an id are not cached.
  Prepared Prepare(const MatcherImage& image) {
    const std::string key =
        image.image_id < 0 ? std::string()
                           : std::to_string(image.image_id) + "|" + image.path +
                                 "|" + std::to_string(image.bgr.rows) + "x" +
                                 std::to_string(image.bgr.cols);
    if (!key.empty()) {
      for (const Prepared& p : prepared_) {
        if (p.key == key) return p;
      }
    }
    const MatcherConfig& c = model_->config();
    at::Tensor rgb = ToRgbTensor(image);
    // On CUDA only the uint8 image crosses the bus and the GPU resizes it
    // (bit-exact with the host's PIL-exact resize, a fraction of its time).
    if (device_.is_cuda() && PreprocessForMatcherRunsOnCuda()) {
      rgb = rgb.to(device_);
    }
    const MatcherImageInputs in =
        PreprocessForMatcherPasses(rgb,
                                   c.coarse_h,
                                   c.coarse_w,
                                   c.upsample_preds ? c.upsample_h : 0,
                                   c.upsample_w,
                                   c.normalize);
    const Prepared p = {
        key,
        in.coarse.to(device_),
        in.upsample.defined() ? in.upsample.to(device_) : at::Tensor()};
    if (!key.empty()) {
      prepared_.push_back(p);
      if (prepared_.size() > kPreparedImages) prepared_.pop_front();
    }
    return p;
  }

  static constexpr size_t kPreparedImages = 8;

  static at::Tensor ToRgbTensor(const MatcherImage& image) {
    if (image.bgr.empty() || image.bgr.type() != CV_8UC3) {
      throw std::invalid_argument("l2m matcher: image '" + image.path +
                                  "' is not 8-bit BGR");
    }
    const cv::Mat bgr =
        image.bgr.isContinuous() ? image.bgr : image.bgr.clone();
    // HWC uint8; flip BGR -> RGB on the channel axis.
    return torch::from_blob(const_cast<uint8_t*>(bgr.ptr<uint8_t>()),
                            {bgr.rows, bgr.cols, 3},
                            torch::kUInt8)
        .flip({2})
        .contiguous();
  }

  L2mMatcherOptions options_;
  torch::Device device_;
  at::ScalarType dtype_;
  RegressionMatcher model_;
  std::unique_ptr<MatchGraph> graph_;  // CUDA with options.cuda_graph
  std::deque<Prepared> prepared_;
  std::mutex mutex_;
};

L2mMatcher::L2mMatcher(const L2mMatcherOptions& options)
    : impl_(std::make_unique<Impl>(options)) {}
L2mMatcher::~L2mMatcher() = default;

PairMatches L2mMatcher::MatchDense(const MatcherImage& image1,
                                   const MatcherImage& image2) {
  return impl_->MatchDense(image1, image2, nullptr);
}

PairMatches L2mMatcher::MatchDense(const MatcherImage& image1,
                                   const MatcherImage& image2,
                                   L2mDenseOutput* dense) {
  return impl_->MatchDense(image1, image2, dense);
}

bool L2mMatcherOptions::Check(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error != nullptr) *error = what;
    return false;
  };
  if (weights.empty() && !dino_weights.empty()) {
    return fail(
        "--L2m.dino_weights without --L2m.weights: the shipped model has no "
        "DINOv2; give the matcher weights of the DINOv2 preset too");
  }
  if (num_samples < 1) return fail("L2m.num_samples must be >= 1");
  if (min_certainty < 0 || min_certainty > 1)
    return fail("L2m.min_certainty must be in [0, 1]");
  if (device != "cpu" && !StartsWith(device, "cuda"))
    return fail("L2m.device must be cpu or cuda[:N]");
  if (precision != "auto" && precision != "fp32" && precision != "fp16" &&
      precision != "bf16") {
    return fail("L2m.precision must be auto, fp32, fp16 or bf16, not '" +
                precision + "'");
  }
  if ((precision == "fp16" || precision == "bf16") &&
      !StartsWith(device, "cuda")) {
    return fail("L2m.precision " + precision +
                " runs on CUDA only (autocast); use fp32 or auto on the CPU");
  }
  return true;
}

std::string ShippedL2mWeightsPath() {
  const char* dir = std::getenv("L2M_MODELS_DIR");
  const std::string base =
      dir != nullptr && *dir != '\0' ? dir : L2M_SOURCE_MODELS_DIR;
  return (std::filesystem::path(base) / "l2m_s.safetensors").string();
}

std::unique_ptr<L2mMatcher> CreateL2mMatcher(const L2mMatcherOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  if (StartsWith(options.device, "cuda") && !torch::cuda::is_available()) {
    throw std::runtime_error("L2m.device is '" + options.device +
                             "' but no CUDA device is available");
  }
  return std::make_unique<L2mMatcher>(options);
}

}  // namespace l2m
