// The `l2m` program: COLMAP-style subcommands over the matching backend.

#include "colmap_plugin/colmap_runner.h"
#include "colmap_plugin/database.h"
#include "colmap_plugin/match_pair_command.h"
#include "colmap_plugin/models_command.h"
#include "colmap_plugin/option_manager.h"
#include "colmap_plugin/reconstruction.h"
#include "colmap_plugin/scale_commands.h"
#include "colmap_plugin/vis_feats_command.h"
#include "datasets/eval_command.h"
#include "l2m_core/bench/benchmark.h"
#include "l2m_core/util/file.h"
#include "synth/demo_scene.h"
#include "synth/synth_command.h"
#include "synth/train_command.h"
#include "synth/train_curves.h"

#include <opencv2/core/version.hpp>
#include <sqlite3.h>
#include <torch/version.h>

#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace l2m {
namespace {

struct Command {
  std::string name;
  std::string summary;
  std::function<int(int, char**)> run;
};

std::vector<Command>& Commands();

int RunHelp(int, char**) {
  std::cout << "l2m: dense matching front end for COLMAP (L2M / RoMa, SIFT, "
               "optical flow)\n\n"
               "Usage: l2m <command> [options]     (l2m <command> --help for "
               "its options)\n\nCommands:\n";
  for (const auto& c : Commands())
    std::cout << "  " << c.name
              << std::string(18 - std::min<size_t>(17, c.name.size()), ' ')
              << c.summary << "\n";
  std::cout << "\nTypical use:  l2m reconstruct --image_path photos/ "
               "--workspace_path out/ --Matcher.type sift\n";
  return 0;
}

int RunVersion(int argc, char** argv) {
  std::string colmap_path = "colmap";
  OptionManager options(
      "version", "Versions of l2m and the libraries and programs it uses.");
  options.Add("colmap_path", &colmap_path, "The colmap program.");
  if (!options.Parse(argc, argv)) return 0;
  std::cout << "l2m 0.1.0\n"
            << "LibTorch " << TORCH_VERSION << "\n"
            << "OpenCV " << CV_VERSION << "\n"
            << "SQLite " << sqlite3_libversion() << "\n";
  const std::string colmap = FindExecutable(colmap_path);
  if (colmap.empty()) {
    std::cout << "colmap: not found on PATH (apt-get install colmap)\n";
  } else {
    const std::string log =
        (std::filesystem::temp_directory_path() / "l2m_version.log").string();
    std::cout << "COLMAP " << ColmapRunner(colmap, log).Version() << " ("
              << colmap << ")\n";
    std::filesystem::remove(log);
  }
  return 0;
}

int RunDatabaseCreate(int argc, char** argv) {
  std::string database_path;
  OptionManager options("database_create",
                        "Creates an empty COLMAP database (3.8 layout, "
                        "readable by every COLMAP).");
  options.AddRequired(
      "database_path", &database_path, "The database file to create.");
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kCreate);
  std::cout << "Created " << database_path << " (" << db.NumImages()
            << " images)\n";
  return 0;
}

int RunImageImport(int argc, char** argv) {
  std::string database_path, image_path;
  ImageImportOptions import;
  OptionManager options("image_import",
                        "Adds the images of a folder (recursively) with their "
                        "cameras; EXIF focal length when present.");
  options.AddRequired(
      "database_path", &database_path, "The database (created if missing).");
  options.AddRequired("image_path",
                      &image_path,
                      "The image folder; names are stored relative to it.");
  AddImageReaderOptions(&options, &import);
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kCreate);
  const ImageImportSummary s = ImportImages(image_path, import, &db);
  std::cout << "Imported " << s.num_imported << " images (" << s.num_existing
            << " already present, " << s.skipped.size() << " skipped, "
            << s.num_exif_focal << " with EXIF focal length)\n";
  return 0;
}

int RunPairs(int argc, char** argv) {
  if (HasOption(argc, argv, "retrieval"))
    return RunRetrievalPairsCommand(argc, argv);
  std::string database_path, output_path;
  PairOptions pairs;
  OptionManager options(
      "pairs", "Writes the image pairs to match as `name1 name2` lines.");
  options.AddRequired(
      "database_path", &database_path, "The database with the images.");
  options.AddRequired("output_path", &output_path, "The pair file to write.");
  AddPairOptions(&options, &pairs);
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kReadOnly);
  const auto list = SelectPairs(pairs, db);
  WritePairsFile(output_path, list, db.ReadAllImages());
  std::cout << "Wrote " << list.size() << " pairs to " << output_path << "\n";
  return 0;
}

int RunMatch(int argc, char** argv) {
  if (HasOption(argc, argv, "plan_path"))
    return RunShardMatchCommand(argc, argv);
  std::string database_path, image_path, pairs_path;
  MatcherOptions matcher;
  MatchingOptions matching;
  OptionManager options("match",
                        "Matches image pairs and stores the result (resumable: "
                        "stored pairs are skipped).\n"
                        "Sparse matchers write keypoints + matches; dense ones "
                        "raw matches (then run `l2m tracks`).\n"
                        "With --plan_path: one shard of a plan (`l2m match "
                        "--plan_path P --help`).");
  options.AddRequired(
      "database_path", &database_path, "The database with the images.");
  options.AddRequired("image_path", &image_path, "The image folder.");
  options.Add("pairs_path",
              &pairs_path,
              "Pair file (`name1 name2`); default: all pairs.");
  AddMatcherOptions(&options, &matcher, &matching);
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kReadWrite);
  PairOptions pair_options;
  if (!pairs_path.empty()) {
    pair_options.mode = "file";
    pair_options.input_path = pairs_path;
  }
  const auto pairs = SelectPairs(pair_options, db);
  auto m = CreateMatcher(matcher);
  const MatchingSummary s =
      MatchPairs(image_path, pairs, m.get(), matching, &db);
  std::cout << "Matched " << s.num_matched << " pairs (" << s.num_skipped
            << " already done), " << s.num_matches
            << (s.dense ? " raw dense" : "") << " matches in " << s.seconds
            << " s\n";
  return 0;
}

int RunTracks(int argc, char** argv) {
  std::string database_path, mode = "merge";
  TrackBuilderOptions tracks;
  OptionManager options("tracks",
                        "Builds per-image keypoints shared across pairs from "
                        "dense matches (multi-view tracks).");
  options.AddRequired(
      "database_path", &database_path, "The database with raw dense matches.");
  AddTrackOptions(&options, &tracks, &mode);
  if (!options.Parse(argc, argv)) return 0;
  tracks.mode = TrackModeFromName(mode);
  Database db(database_path, Database::Mode::kReadWrite);
  const TrackBuilderStats s = BuildTracksInDatabase(tracks, &db);
  std::cout << "Tracks: " << s.num_keypoints << " keypoints, "
            << s.num_output_matches << " matches (from " << s.num_input_matches
            << " raw; " << s.num_dropped_one_to_one
            << " dropped as not one-to-one)\n";
  return 0;
}

int RunVerify(int argc, char** argv) {
  std::string database_path, pairs_path, work_dir;
  VerificationOptions verification;
  OptionManager options(
      "verify",
      "Geometric verification of stored matches -> two_view_geometries.");
  options.AddRequired("database_path", &database_path, "The database.");
  options.Add(
      "pairs_path", &pairs_path, "Pair file; default: all pairs with matches.");
  options.Add("work_path",
              &work_dir,
              "Folder for the colmap log (default: beside the database).");
  options.Add("colmap_path", &verification.colmap_path, "The colmap program.");
  AddVerificationOptions(&options, &verification);
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kReadWrite);
  std::vector<ImagePair> pairs;
  if (pairs_path.empty()) {
    for (image_pair_t id : db.ReadMatchedPairIds())
      pairs.push_back(PairIdToImagePair(id));
  } else {
    pairs = PairsFromFile(pairs_path, db.ReadAllImages());
  }
  if (work_dir.empty())
    work_dir = std::filesystem::absolute(database_path).parent_path().string();
  const VerificationSummary s = VerifyPairs(pairs, verification, work_dir, &db);
  std::cout << "Verified " << s.num_verified << " of " << s.num_pairs
            << " pairs (" << s.num_inliers << " inlier matches) in "
            << s.seconds << " s\n";
  return 0;
}

int RunReconstruct(int argc, char** argv) {
  std::string image_path, workspace_path;
  PipelineOptions p;
  OptionManager options(
      "reconstruct",
      "Photos folder -> COLMAP database -> matches (-> tracks) -> verification "
      "-> colmap mapper.\n"
      "Writes WORKSPACE/database.db, sparse/N, report.json and report.md.");
  options.AddRequired("image_path", &image_path, "The photos folder.");
  options.AddRequired("workspace_path",
                      &workspace_path,
                      "Output folder (created; reruns resume).");
  options.Add("matcher",
              &p.matcher.type,
              "Shorthand for --Matcher.type: sift, flow or l2m.");
  options.Add("colmap_path", &p.colmap_path, "The colmap program.");
  options.Add("gt_model_path",
              &p.gt_model_path,
              "COLMAP text model of the true cameras: the report compares "
              "poses with it.");
  AddImageReaderOptions(&options, &p.image_reader);
  AddPairOptions(&options, &p.pairs);
  AddMatcherOptions(&options, &p.matcher, &p.matching);
  AddTrackOptions(&options, &p.tracks, &p.tracks_mode);
  AddVerificationOptions(&options, &p.verification);
  AddMapperOptions(&options, &p.mapper);
  if (!options.Parse(argc, argv)) return 0;
  const ReconstructionReport report =
      RunReconstruction(image_path, workspace_path, p);
  std::cout << report.ToMarkdown();
  std::cout << "\nReport: " << workspace_path << "/report.json\n";
  return report.model.registered_images > 0 ? 0 : 3;
}

// `l2m train`: the trainer, then the curves of its log as RUN/curves.png
// (the standalone l2m_train has no OpenCV to draw them).
int RunTrain(int argc, char** argv) {
  const int code = RunTrainCommand(argc, argv);
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) != "--Train.output_path") continue;
    const std::string log = std::string(argv[i + 1]) + "/train_log.jsonl";
    if (code == 0 && std::filesystem::exists(log)) {
      const std::string png = std::string(argv[i + 1]) + "/curves.png";
      PlotTrainingCurves(log, png);
      std::cerr << "train: curves in " << png << std::endl;
    }
  }
  return code;
}

int RunTrainCurves(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "Usage: l2m train_curves RUN/train_log.jsonl OUTPUT.png\n";
    return 2;
  }
  PlotTrainingCurves(argv[1], argv[2]);
  return 0;
}

int RunDemoScene(int argc, char** argv) {
  std::string output_path;
  DemoSceneOptions scene;
  OptionManager options(
      "demo_scene",
      "Renders the built-in demo scene (textured boxes, exact ray casting, "
      "known poses):\n"
      "OUTPUT/images/*.png and OUTPUT/ground_truth/*.txt (COLMAP text model).");
  options.AddRequired("output_path", &output_path, "Output folder (created).");
  options.Add("DemoScene.num_views", &scene.num_views, "Number of views.");
  options.Add("DemoScene.width", &scene.width, "Image width.");
  options.Add("DemoScene.height", &scene.height, "Image height.");
  options.Add("DemoScene.arc_degrees",
              &scene.arc_degrees,
              "Arc the cameras sweep (degrees).");
  options.Add(
      "DemoScene.seed", &scene.seed, "Seed of the box layout and textures.");
  if (!options.Parse(argc, argv)) return 0;
  WriteDemoScene(output_path, scene);
  std::cout << "Wrote " << scene.num_views << " views to " << output_path
            << "/images\n";
  return 0;
}

int RunBench(int argc, char** argv) {
  BenchmarkOptions bench;
  // CPU defaults for a quick look; a GPU benchmark names its presets,
  // precisions and batch sizes.
  bench.device = "cpu";
  bench.presets = {"l2m_560"};
  bench.precisions = {"fp32"};
  bench.batch_sizes = {1};
  bench.repeats = 1;
  bench.warmup = 0;
  std::string output_path;
  std::vector<std::string> batches;
  OptionManager options(
      "bench",
      "Times the matcher as users run it (JPEG decode + resize + both passes "
      "+ sample) and\nthe model alone, batched, per preset and precision; "
      "prints JSON. Random full-size\nweights unless --weights is given (the "
      "timing does not depend on the values).");
  options.AddList("preset", &bench.presets, "Presets (l2m_560, l2m, ...).");
  options.AddList("precision",
                  &bench.precisions,
                  "fp32, fp16, bf16 (autocast; CUDA only).");
  options.AddList("batch", &batches, "Pairs per batch (model alone).");
  options.AddList("images",
                  &bench.images,
                  "Two JPEGs for the full path (skipped without them).");
  options.Add("device", &bench.device, "cuda[:N] or cpu.");
  options.Add("warmup", &bench.warmup, "Untimed runs first.");
  options.Add(
      "repeats", &bench.repeats, "Timed runs (the median is reported).");
  options.Add("num_samples", &bench.num_samples, "Matches sampled per pair.");
  options.Add(
      "weights", &bench.weights, "Matcher checkpoint (default random).");
  options.Add("dino_weights", &bench.dino_weights, "ViT checkpoint.");
  options.Add("num_threads", &bench.num_threads, "CPU threads (0: default).");
  options.AddBool("optimize",
                  &bench.optimize,
                  "Fold BatchNorms (and channels-last on CUDA) first.");
  options.AddBool("cpu_huge_pages",
                  &bench.cpu_huge_pages,
                  "CPU: huge-page allocator (faster first touch, reuse).");
  options.AddBool("stage_breakdown",
                  &bench.stage_breakdown,
                  "Per-stage times (one extra synchronised run).");
  options.AddBool("cuda_graph",
                  &bench.cuda_graph,
                  "Model alone also replayed as one CUDA graph per batch.");
  options.Add("graphs_in_flight",
              &bench.graphs_in_flight,
              "With cuda_graph: captured batches replayed at once, each on "
              "its own stream (1-8).");
  options.AddBool("full_path_graph",
                  &bench.full_path_graph,
                  "CUDA full path: the model replayed as a CUDA graph, as "
                  "`l2m match` runs it.");
  options.AddBool("gpu_preprocess",
                  &bench.gpu_preprocess,
                  "CUDA full path: resize on the GPU (bit-exact) instead of on "
                  "host threads.");
  options.Add("profile_prefix",
              &bench.profile_prefix,
              "Kineto kernel trace per batch size to PREFIX_*.json "
              "(scripts/bench/kernel_summary.py sums it by stage).");
  options.Add("output_path", &output_path, "Also write the JSON here.");
  if (!options.Parse(argc, argv)) return 0;
  if (!batches.empty()) {
    bench.batch_sizes.clear();
    for (const std::string& b : batches)
      bench.batch_sizes.push_back(std::stoi(b));
  }
  const std::string json = RunBenchmark(bench);
  std::cout << json;
  if (!output_path.empty()) WriteFileAtomic(output_path, json);
  return 0;
}

std::vector<Command>& Commands() {
  static std::vector<Command> commands = {
      {"help", "Lists the commands.", RunHelp},
      {"version",
       "Versions of l2m, LibTorch, OpenCV, SQLite and colmap.",
       RunVersion},
      {"database_create",
       "Creates an empty COLMAP database.",
       RunDatabaseCreate},
      {"image_import",
       "Adds a folder of images (+ cameras) to a database.",
       RunImageImport},
      {"pairs",
       "Writes the pairs to match (exhaustive, sequential, file, "
       "--retrieval K).",
       RunPairs},
      {"match", "Matches pairs with a matcher adapter (resumable).", RunMatch},
      {"plan",
       "Sorted pair list in fixed chunks for sharded matching (Slurm, MPI).",
       RunPlanCommand},
      {"merge",
       "Checks chunk files of a plan and merges them into the database.",
       RunMergeCommand},
      {"match_pair",
       "Matches two images: matches, certainty, warp and match pictures.",
       RunMatchPairCommand},
      {"tracks",
       "Dense matches -> per-image keypoints and multi-view tracks.",
       RunTracks},
      {"verify", "Geometric verification -> two_view_geometries.", RunVerify},
      {"reconstruct",
       "The whole job: photos folder -> sparse model + report.",
       RunReconstruct},
      {"bench",
       "Times the matcher (full path and model alone) as JSON.",
       RunBench},
      {"eval",
       "Evaluates a matcher on a benchmark (pose / homography AUC).",
       RunEvalCommand},
      {"models",
       "Model cache: install published weights, import checkpoints (any "
       "PyTorch layout) as safetensors, list.",
       RunModelsCommand},
      {"vis_feats",
       "PCA pictures of ViT-B/14 encoder features (DINOv2, FiT3D, L2M).",
       RunVisFeatsCommand},
      {"demo_scene",
       "Renders the built-in demo scene (images + true poses).",
       RunDemoScene},
      {"synth",
       "Training pairs from single photos: views, relight, sky.",
       RunSynthCommand},
      {"train",
       "Trains a matcher (l2m_s) on pairs synthesised from photos; resumes.",
       RunTrain},
      {"train_curves",
       "PNG curves (loss, lr, validation EPE/PCK) of a training log.",
       RunTrainCurves},
  };
  return commands;
}

}  // namespace
}  // namespace l2m

int main(int argc, char** argv) {
  using namespace l2m;
  if (argc < 2 || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "--help")
    return RunHelp(0, nullptr);
  const std::string name = argv[1];
  for (const auto& command : Commands()) {
    if (command.name != name) continue;
    try {
      return command.run(argc - 1, argv + 1);
    } catch (const std::exception& e) {
      std::cerr << "ERROR: " << e.what() << std::endl;
      return 1;
    }
  }
  std::cerr << "ERROR: unknown command '" << name << "' (see `l2m help`)"
            << std::endl;
  return 2;
}
