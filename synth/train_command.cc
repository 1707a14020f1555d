#include "synth/train_command.h"

#include "l2m_core/image/image_codec.h"
#include "l2m_core/train/planar_pairs.h"
#include "l2m_core/train/trainer.h"
#include "l2m_core/util/string.h"
#include "synth/train_pairs.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace l2m {
namespace {

namespace fs = std::filesystem;

const char kUsage[] =
    "Usage: l2m train --Train.output_path RUN (--Data.image_dir DIR | "
    "--Data.image_list FILE | --Data.kind planar) [options]\n"
    "\n"
    "Trains a matcher graph (default l2m_s) with RoMa's losses on pairs "
    "synthesised on the fly\nfrom single photos (procedural depth, novel "
    "views, relighting). Rerunning the same\ncommand resumes exactly from "
    "RUN/checkpoint.pt. Writes "
    "RUN/train_log.jsonl,\nRUN/weights_last.safetensors "
    "(every checkpoint) and RUN/weights.safetensors (at the end).\n"
    "\nData options:\n"
    "  --Data.kind photos|planar      photos (default) or exact planar pairs\n"
    "  --Data.image_dir DIR           photos below DIR (jpg/png, recursive)\n"
    "  --Data.image_list FILE         photos listed in FILE\n"
    "  --Data.validation_fraction F   held-out photos for validation (0.02)\n"
    "  --Data.split_seed N            seed of the held-out split (0)\n"
    "  --Data.relight 0|1             consistent relighting of both views (1)\n"
    "  --Data.relight_probability P   share of relit pairs (0.5)\n"
    "  --Data.photometric_jitter 0|1  per-view brightness/contrast/gamma (1)\n"
    "  --Data.motion_scale S          multiplies the camera translations (1)\n"
    "  --Data.max_rotation_deg D      rotation range per axis (10)\n"
    "  --Data.preview N               write the first N pairs as PNGs to "
    "RUN/preview and stop\n"
    "\nTraining options:\n";

struct DataOptions {
  std::string kind = "photos";
  PhotoPairOptions photos;
  int preview = 0;
};

void SetDataOption(DataOptions* d,
                   const std::string& name,
                   const std::string& value) {
  auto number = [&]() {
    double x = 0;
    if (!ParseDouble(value, &x)) {
      throw std::invalid_argument("--Data." + name + ": '" + value +
                                  "' is not a number");
    }
    return x;
  };
  PhotoPairOptions& p = d->photos;
  if (name == "kind") {
    if (value != "photos" && value != "planar") {
      throw std::invalid_argument("--Data.kind must be photos or planar");
    }
    d->kind = value;
  } else if (name == "image_dir") {
    p.image_dir = value;
  } else if (name == "image_list") {
    p.image_list = value;
  } else if (name == "validation_fraction") {
    p.validation_fraction = number();
  } else if (name == "split_seed") {
    p.split_seed = static_cast<uint64_t>(number());
  } else if (name == "relight") {
    p.relight = number() != 0;
  } else if (name == "relight_probability") {
    p.relight_probability = number();
  } else if (name == "photometric_jitter") {
    p.photometric_jitter = number() != 0;
  } else if (name == "motion_scale") {
    p.motion_scale = number();
  } else if (name == "max_rotation_deg") {
    p.pose.max_rx_deg = p.pose.max_ry_deg = p.pose.max_rz_deg = number();
  } else if (name == "preview") {
    d->preview = static_cast<int>(number());
  } else {
    throw std::invalid_argument("unknown option --Data." + name +
                                " (see --help)");
  }
}

}  // namespace

int RunTrainCommand(int argc, char** argv) {
  TrainOptions train;
  DataOptions data;
  data.photos.validation_fraction = 0.02;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage << TrainOptionsHelp();
      return 0;
    }
    if (arg.rfind("--", 0) != 0 || i + 1 >= argc) {
      throw std::invalid_argument(
          "expected --Train.NAME VALUE or --Data.NAME "
          "VALUE, got '" +
          arg + "' (see --help)");
    }
    const std::string value = argv[++i];
    if (arg.rfind("--Train.", 0) == 0) {
      SetTrainOption(&train, arg.substr(8), value);
    } else if (arg.rfind("--Data.", 0) == 0) {
      SetDataOption(&data, arg.substr(7), value);
    } else {
      throw std::invalid_argument("unknown option " + arg + " (see --help)");
    }
  }
  train.Check();

  std::shared_ptr<const PairSource> train_source, validation_source;
  if (data.kind == "planar") {
    PlanarPairOptions p;
    p.height = p.width = train.image_size;
    p.num_pairs = 100000;
    p.seed = train.seed;
    train_source = std::make_shared<PlanarPairSource>(p);
    p.seed = train.seed + 1000003;
    p.num_pairs = std::max(1, train.validation_pairs);
    validation_source = std::make_shared<PlanarPairSource>(p);
  } else {
    if (data.photos.image_dir.empty() && data.photos.image_list.empty()) {
      throw std::invalid_argument(
          "no photos: give --Data.image_dir or --Data.image_list (or "
          "--Data.kind planar)");
    }
    PhotoPairOptions p = data.photos;
    p.height = p.width = train.image_size;
    p.seed = train.seed;
    p.split = "train";
    train_source = std::make_shared<PhotoPairSource>(p);
    if (p.validation_fraction > 0 && train.validation_pairs > 0) {
      p.split = "val";
      // Validation pairs are fixed: their own seed, never the training one.
      p.seed = train.seed + 1000003;
      validation_source = std::make_shared<PhotoPairSource>(p);
    }
    std::fprintf(stderr,
                 "train: %lld training photos, %lld held out\n",
                 static_cast<long long>(train_source->Size()),
                 static_cast<long long>(
                     validation_source ? validation_source->Size() : 0));
  }

  if (data.preview > 0) {
    const fs::path dir = fs::path(train.output_path) / "preview";
    fs::create_directories(dir);
    for (int i = 0; i < data.preview; ++i) {
      const TrainingPair pair = train_source->Get(i);
      const fs::path file = dir / ("pair_" + std::to_string(i) + ".png");
      WritePngFile(file.string(), DrawTrainingPair(pair));
      std::cout << file.string() << "  (" << pair.name << ")\n";
    }
    return 0;
  }

  Trainer trainer(train, train_source, validation_source);
  const int64_t taken = trainer.Run();
  std::fprintf(stderr,
               "train: %lld steps this run, at step %lld of %lld\n",
               static_cast<long long>(taken),
               static_cast<long long>(trainer.step()),
               static_cast<long long>(train.num_steps));
  return 0;
}

}  // namespace l2m
