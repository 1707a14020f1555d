#include "colmap_plugin/models_command.h"

#include "colmap_plugin/model_install.h"
#include "colmap_plugin/option_manager.h"
#include "l2m_core/model/config.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/model/regression_matcher.h"
#include "l2m_core/util/progress.h"
#include "l2m_core/weights/key_list.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/strict_load.h"

#include <torch/torch.h>

#include <iostream>
#include <stdexcept>

namespace l2m {
namespace {

// Which graph the weights fit, by building the candidates and comparing
// names and shapes (dtype aside: fp16 releases load into fp32 graphs).
std::string IdentifyArchitecture(const StateDict& weights) {
  const std::vector<TensorSpec> actual = SpecsOf(weights);
  auto fits = [&](const torch::nn::Module& module, bool ignore_mask_token) {
    KeyComparison c =
        CompareKeys(ModuleSpecs(module), actual, /*compare_dtypes=*/false);
    if (ignore_mask_token && c.missing.size() == 1 &&
        c.missing[0] == "mask_token")
      c.missing.clear();
    return c.ok();
  };
  if (weights.Find("decoder.embedding_decoder.to_out.weight") != nullptr) {
    // roma_outdoor / roma_indoor / l2m share one graph; only inference
    // settings differ.
    const RegressionMatcher matcher(MatcherConfig::L2m560());
    if (fits(*matcher, false))
      return "L2M++ / RoMa matcher (decoder + VGG19-BN; presets l2m, l2m_560, "
             "roma_*)";
  }
  const at::Tensor* pos = weights.Find("pos_embed");
  if (pos != nullptr && pos->dim() == 3) {
    const int64_t dim = pos->size(2);
    if (dim == 1024 && fits(*DinoVisionTransformer(DinoConfig::VitL14()), true))
      return "DINOv2 ViT-L/14";
    if (dim == 768 &&
        fits(*DinoVisionTransformer(DinoConfig::VitB14()), true)) {
      return weights.Find("mask_token")
                 ? "DINOv2 ViT-B/14"
                 : "DINOv2 ViT-B/14 layout without mask_token (FiT3D)";
    }
  }
  return "";
}

std::string PublishedList() {
  std::string s;
  for (const PublishedModel& m : PublishedModels()) {
    s += "  " + m.name +
         std::string(m.name.size() < 20 ? 20 - m.name.size() : 1, ' ') +
         m.description + "\n";
  }
  return s;
}

int RunInstall(int argc, char** argv) {
  InstallOptions install;
  std::string name;
  OptionManager options(
      "models install",
      "Downloads a published checkpoint (or --url) with resume and checksum, "
      "then imports it into the model cache. Published:\n" +
          PublishedList());
  options.AddRequired("name", &name, "Model name (also the first argument).");
  options.Add("url",
              &install.url,
              "Download from this address instead (mirror, file://...).");
  options.Add("sha256", &install.sha256, "SHA-256 the file must have.");
  options.Add("cache_path", &install.cache_dir, "Model cache folder.");
  options.AddBool("overwrite",
                  &install.overwrite,
                  "Replace an installed model of the same name.");
  options.AddBool("keep_download",
                  &install.keep_download,
                  "Keep the downloaded checkpoint under <cache>/downloads.");
  options.Add("max_retries",
              &install.download.max_retries,
              "Resumed attempts after a dropped connection.");
  // `l2m models install NAME ...`: the name may come first, unflagged.
  std::vector<char*> args(argv, argv + argc);
  std::string flag = "--name";
  if (argc >= 2 && argv[1][0] != '-')
    args.insert(args.begin() + 1, flag.data());
  if (!options.Parse(static_cast<int>(args.size()), args.data())) return 0;
  std::unique_ptr<Progress> progress;
  uint64_t last_total = 0;
  install.download.progress = [&](uint64_t done, uint64_t total) {
    if (total == 0) return;
    if (!progress || total != last_total) {
      progress = std::make_unique<Progress>("download " + name + " (KiB)",
                                            static_cast<int64_t>(total >> 10));
      last_total = total;
    }
    const int64_t kib = static_cast<int64_t>(done >> 10);
    if (kib > progress->done()) progress->Add(kib - progress->done());
  };
  const InstallSummary summary = InstallModel(name, install);
  if (progress) progress->Finish();
  const DownloadResult& d = summary.download;
  std::cout << "downloaded " << d.bytes << " bytes in " << d.attempts
            << " attempt(s)";
  if (d.resumed_from > 0) std::cout << ", resumed at byte " << d.resumed_from;
  std::cout << "\nsha256 " << d.sha256 << " ("
            << (d.checksum_source.empty()
                    ? "no checksum published: recorded in the cache entry"
                    : "verified against " + d.checksum_source)
            << ")\n"
            << summary.import.ToString();
  const std::string arch =
      IdentifyArchitecture(ReadModelWeights(summary.import.output_path));
  std::cout << "architecture: "
            << (arch.empty() ? "no known graph matches these keys and shapes"
                             : arch)
            << "\n";
  return 0;
}

}  // namespace

int RunModelsCommand(int argc, char** argv) {
  const std::string usage =
      "Usage: l2m models import --input_path FILE [--name NAME] [--cache_path "
      "DIR]\n"
      "       l2m models list [--cache_path DIR]\n"
      "       l2m models install NAME [--url URL] [--sha256 HEX] [--cache_path "
      "DIR]\n\n"
      "import converts any supported checkpoint (torch.save zip or legacy "
      ".pth, Lightning .ckpt,\n"
      "{\"model\": ...} wrappers, fp16, safetensors) into NAME.safetensors in "
      "the model cache\n"
      "(" +
      DefaultModelCacheDir() +
      ", or $L2M_MODEL_DIR): tensors only, wrapper prefixes stripped.\n"
      "Use the name wherever weights are asked for (--L2m.weights NAME).\n"
      "install downloads published weights (resumable, checksummed) and "
      "imports them. Published:\n" +
      PublishedList();
  if (argc < 2 || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "-h") {
    std::cout << usage;
    return argc < 2 ? 2 : 0;
  }
  const std::string sub = argv[1];
  std::string cache_dir;
  if (sub == "import") {
    std::string input_path, name;
    bool overwrite = false;
    OptionManager options("models import",
                          "Converts a checkpoint into the model cache.");
    options.AddRequired("input_path", &input_path, "The checkpoint file.");
    options.Add("name",
                &name,
                "Cache name (default: the file name without extension).");
    options.Add("cache_path", &cache_dir, "Model cache folder.");
    options.AddBool(
        "overwrite", &overwrite, "Replace a cached model of the same name.");
    if (!options.Parse(argc - 1, argv + 1)) return 0;
    if (name.empty()) {
      name = input_path.substr(input_path.find_last_of('/') + 1);
      name = name.substr(0, name.find('.'));
    }
    ImportOptions import;
    import.overwrite = overwrite;
    const ImportSummary summary =
        ImportCheckpointToCache(input_path, name, cache_dir, import);
    std::cout << summary.ToString();
    const std::string arch =
        IdentifyArchitecture(ReadModelWeights(summary.output_path));
    std::cout << "architecture: "
              << (arch.empty() ? "no known graph matches these keys and shapes"
                               : arch)
              << "\n";
    return 0;
  }
  if (sub == "list") {
    OptionManager options("models list", "Lists the model cache.");
    options.Add("cache_path", &cache_dir, "Model cache folder.");
    if (!options.Parse(argc - 1, argv + 1)) return 0;
    const auto models = ListCachedModels(cache_dir);
    if (models.empty()) {
      std::cout << "No models in "
                << (cache_dir.empty() ? DefaultModelCacheDir() : cache_dir)
                << "\n";
    }
    for (const auto& m : models) {
      std::cout << m.name << "\t" << m.num_tensors << " tensors\t"
                << m.num_elements << " values\t" << m.file_bytes / (1 << 20)
                << " MiB\t" << m.path;
      if (!m.error.empty()) std::cout << "\tERROR: " << m.error;
      std::cout << "\n";
    }
    return 0;
  }
  if (sub == "install") return RunInstall(argc - 1, argv + 1);
  std::cerr << "ERROR: unknown models subcommand '" << sub << "'\n" << usage;
  return 2;
}

}  // namespace l2m
