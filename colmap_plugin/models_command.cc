#include "colmap_plugin/models_command.h"

#include "colmap_plugin/option_manager.h"
#include "l2m_core/model/config.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/model/regression_matcher.h"
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

}  // namespace

int RunModelsCommand(int argc, char** argv) {
  const std::string usage =
      "Usage: l2m models import --input_path FILE [--name NAME] [--cache_path "
      "DIR]\n"
      "       l2m models list [--cache_path DIR]\n\n"
      "import converts any supported checkpoint (torch.save zip or legacy "
      ".pth, Lightning .ckpt,\n"
      "{\"model\": ...} wrappers, fp16, safetensors) into NAME.safetensors in "
      "the model cache\n"
      "(" +
      DefaultModelCacheDir() +
      ", or $L2M_MODEL_DIR): tensors only, wrapper prefixes stripped.\n"
      "Use the name wherever weights are asked for (--L2m.weights NAME).\n";
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
  std::cerr << "ERROR: unknown models subcommand '" << sub << "'\n" << usage;
  return 2;
}

}  // namespace l2m
