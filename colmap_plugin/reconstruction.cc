#include "colmap_plugin/reconstruction.h"

#include "colmap_plugin/option_manager.h"
#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace l2m {

bool PairOptions::Check(std::string* error) const {
  if (mode != "exhaustive" && mode != "sequential" && mode != "file") {
    *error =
        "Pairs.mode must be exhaustive, sequential or file, not '" + mode + "'";
    return false;
  }
  if (mode == "sequential" && overlap < 1) {
    *error = "Pairs.overlap must be >= 1";
    return false;
  }
  if (mode == "file" && input_path.empty()) {
    *error = "Pairs.mode file needs --Pairs.input_path";
    return false;
  }
  return true;
}

void AddImageReaderOptions(OptionManager* m, ImageImportOptions* o) {
  m->Add("ImageReader.camera_model",
         &o->camera_model,
         "SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV.");
  m->AddBool("ImageReader.single_camera",
             &o->single_camera,
             "One camera shared by all images.");
  m->Add(
      "ImageReader.default_focal_length_factor",
      &o->default_focal_length_factor,
      "Focal length prior = factor * max(width, height) when EXIF has none.");
  m->AddBool("ImageReader.strict",
             &o->strict,
             "Fail on an unreadable image instead of skipping it.");
}

void AddPairOptions(OptionManager* m, PairOptions* o) {
  m->Add("Pairs.mode", &o->mode, "exhaustive, sequential or file.");
  m->Add("Pairs.overlap",
         &o->overlap,
         "sequential: each image with the next N (by name).");
  m->Add("Pairs.input_path",
         &o->input_path,
         "file: a text file of `name1 name2` lines.");
}

void AddMatcherOptions(OptionManager* m,
                       MatcherOptions* o,
                       MatchingOptions* matching) {
  m->Add("Matcher.type",
         &o->type,
         "sift (sparse), flow (dense optical flow), l2m (dense, learned).");
  m->Add("Sift.max_image_size",
         &o->sift.max_image_size,
         "Images are downscaled to this size for SIFT.");
  m->Add("Sift.max_num_features",
         &o->sift.max_num_features,
         "Features per image.");
  m->AddBool("Sift.root_sift", &o->sift.root_sift, "RootSIFT descriptors.");
  m->Add("Sift.max_ratio", &o->sift.max_ratio, "Lowe's ratio test.");
  m->Add("Sift.max_distance",
         &o->sift.max_distance,
         "Largest descriptor distance.");
  m->AddBool("Sift.cross_check",
             &o->sift.cross_check,
             "Mutual nearest neighbours only.");
  m->Add("Flow.max_image_size",
         &o->flow.max_image_size,
         "Flow is computed at this size.");
  m->Add(
      "Flow.preset", &o->flow.preset, "DIS preset: ultrafast, fast, medium.");
  m->Add("Flow.grid_step",
         &o->flow.grid_step,
         "Match every N-th pixel of the flow image.");
  m->Add("Flow.fb_threshold",
         &o->flow.fb_threshold,
         "Forward-backward error threshold (pixels).");
  m->Add("Flow.max_num_matches", &o->flow.max_num_matches, "Matches per pair.");
  m->Add("L2m.preset",
         &o->l2m.preset,
         "l2m_s (shipped, 448), l2m (672/1344), l2m_560 (560/864), "
         "roma_outdoor, roma_indoor; empty: from the weights' metadata.");
  m->Add("L2m.weights",
         &o->l2m.weights,
         "Matcher weights: checkpoint file or cached model name; empty: the "
         "shipped compact model (models/l2m_s.safetensors).");
  m->Add("L2m.dino_weights",
         &o->l2m.dino_weights,
         "DINOv2 ViT weights: checkpoint file or cached model name.");
  m->Add("L2m.num_samples",
         &o->l2m.num_samples,
         "Matches sampled per pair (threshold-balanced).");
  m->Add("L2m.min_certainty",
         &o->l2m.min_certainty,
         "Drop sampled matches below this certainty.");
  m->Add("L2m.device", &o->l2m.device, "cpu or cuda[:N].");
  m->Add("L2m.precision",
         &o->l2m.precision,
         "auto (fp16 on CUDA, fp32 on the CPU), fp32, fp16 or bf16.");
  m->Add(
      "L2m.num_threads", &o->l2m.num_threads, "CPU threads (0 = all cores).");
  m->AddBool("L2m.cpu_huge_pages",
             &o->l2m.cpu_huge_pages,
             "CPU: huge-page allocator (faster first touch, memory reuse).");
  m->AddBool("L2m.cuda_graph",
             &o->l2m.cuda_graph,
             "CUDA: replay the model as a CUDA graph (same results, less "
             "launch overhead; keeps ~3 GiB of activations).");
  m->AddBool("Matching.as_dense",
             &matching->as_dense,
             "Treat a sparse matcher as dense (drop keypoint ids, jitter): "
             "tests the track builder.");
  m->Add("Matching.dense_jitter_px",
         &matching->dense_jitter_px,
         "Jitter of as_dense positions (pixels).");
  m->AddBool("Matching.overwrite",
             &matching->overwrite,
             "Replace matches of another matcher in the database.");
  m->Add("Matching.seed", &matching->seed, "Random seed (jitter, sampling).");
}

void AddTrackOptions(OptionManager* m,
                     TrackBuilderOptions* o,
                     std::string* mode) {
  m->Add("Tracks.mode",
         mode,
         "merge (per-image keypoints shared by all pairs) or per_pair (naive "
         "export).");
  m->Add("Tracks.merge_radius",
         &o->merge_radius,
         "Observations within this radius (pixels) join a keypoint.");
  m->Add(
      "Tracks.min_score", &o->min_score, "Ignore matches scoring below this.");
  m->Add("Tracks.max_keypoints_per_image",
         &o->max_keypoints_per_image,
         "Heaviest keypoints kept (0 = all).");
}

void AddVerificationOptions(OptionManager* m, VerificationOptions* o) {
  m->Add("Verification.method",
         &o->method,
         "colmap (matches_importer) or opencv (USAC MAGSAC++, in process).");
  m->Add("Verification.max_error", &o->max_error, "Inlier threshold (pixels).");
  m->Add("Verification.confidence", &o->confidence, "RANSAC confidence.");
  m->Add(
      "Verification.max_num_trials", &o->max_num_trials, "RANSAC iterations.");
  m->Add("Verification.min_inlier_ratio",
         &o->min_inlier_ratio,
         "colmap: smallest inlier ratio.");
  m->Add("Verification.min_num_inliers",
         &o->min_num_inliers,
         "Pairs with fewer inliers are dropped.");
}

void AddMapperOptions(OptionManager* m, MapperOptions* o) {
  m->Add("Mapper.num_threads",
         &o->num_threads,
         "Threads for colmap mapper (-1 = all).");
  m->Add("Mapper.min_num_matches",
         &o->min_num_matches,
         "Pairs with fewer verified matches are ignored.");
  m->AddBool(
      "Mapper.extract_colors", &o->extract_colors, "Colour the 3D points.");
  m->Add("Mapper.init_min_tri_angle",
         &o->init_min_tri_angle,
         "Smallest triangulation angle of the initial pair (degrees); lower it "
         "for video.");
  m->AddBool("Mapper.tri_ignore_two_view_tracks",
             &o->tri_ignore_two_view_tracks,
             "COLMAP's default; 0 keeps two-view tracks.");
}

std::vector<ImagePair> SelectPairs(const PairOptions& options,
                                   const Database& database) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  const std::vector<DbImage> images = database.ReadAllImages();
  if (images.size() < 2) {
    throw std::runtime_error("Database '" + database.path() + "' has " +
                             std::to_string(images.size()) +
                             " image(s); matching needs at least two");
  }
  if (options.mode == "sequential")
    return SequentialPairs(images, options.overlap);
  if (options.mode == "file") return PairsFromFile(options.input_path, images);
  return ExhaustivePairs(images);
}

std::string ReconstructionReport::ToJson() const {
  nlohmann::ordered_json j;
  j["matcher"] = matcher;
  j["num_images"] = num_images;
  j["registered_images"] = model.registered_images;
  j["num_points3D"] = model.num_points3D;
  j["mean_track_length"] = model.mean_track_length;
  j["mean_reprojection_error"] = model.mean_reprojection_error;
  j["num_observations"] = model.num_observations;
  j["num_models"] = num_models;
  j["model_path"] = model_path;
  j["num_pairs"] = num_pairs;
  j["num_verified_pairs"] = num_verified_pairs;
  j["num_raw_matches"] = matching.num_matches;
  j["dense"] = matching.dense;
  if (matching.dense) {
    j["tracks"] = {{"num_keypoints", tracks.num_keypoints},
                   {"num_input_matches", tracks.num_input_matches},
                   {"num_output_matches", tracks.num_output_matches},
                   {"num_dropped_one_to_one", tracks.num_dropped_one_to_one},
                   {"num_dropped_by_cap", tracks.num_dropped_by_cap}};
  }
  if (has_gt) {
    j["pose_error_vs_gt"] = {
        {"num_compared", pose_vs_gt.num_compared},
        {"num_gt_images", pose_vs_gt.num_gt_images},
        {"rotation_error_deg_median", pose_vs_gt.rotation_error_deg_median},
        {"rotation_error_deg_max", pose_vs_gt.rotation_error_deg_max},
        {"position_error_median", pose_vs_gt.position_error_median},
        {"position_error_max", pose_vs_gt.position_error_max},
        {"relative_position_error_median",
         pose_vs_gt.relative_position_error_median}};
  }
  j["seconds"] = seconds;
  double total = 0;
  for (const auto& [stage, s] : seconds) total += s;
  j["seconds_total"] = total;
  j["image_path"] = image_path;
  j["workspace_path"] = workspace_path;
  j["colmap_version"] = colmap_version;
  return j.dump(2) + "\n";
}

std::string ReconstructionReport::ToMarkdown() const {
  std::ostringstream md;
  md << std::fixed << std::setprecision(2);
  md << "# l2m reconstruction report\n\n";
  md << "Images: `" << image_path << "` - matcher: **" << matcher << "**"
     << (matching.dense ? " (dense, tracks merged)" : " (sparse)")
     << " - COLMAP " << colmap_version << "\n\n";
  md << "| metric | value |\n|---|---|\n";
  md << "| registered images | " << model.registered_images << " / "
     << num_images << " |\n";
  md << "| 3D points | " << model.num_points3D << " |\n";
  md << "| mean track length | " << model.mean_track_length << " |\n";
  md << "| mean reprojection error (px) | " << model.mean_reprojection_error
     << " |\n";
  md << "| observations | " << model.num_observations << " |\n";
  md << "| verified pairs | " << num_verified_pairs << " / " << num_pairs
     << " |\n";
  md << "| models | " << num_models << " (largest: `" << model_path
     << "`) |\n\n";
  if (has_gt) {
    md << "Recovered poses vs ground truth (" << pose_vs_gt.num_compared
       << " of " << pose_vs_gt.num_gt_images
       << " images, after a similarity alignment): rotation error median "
       << pose_vs_gt.rotation_error_deg_median << " deg, max "
       << pose_vs_gt.rotation_error_deg_max
       << " deg; camera position error median "
       << pose_vs_gt.position_error_median << " (" << std::setprecision(1)
       << 100 * pose_vs_gt.relative_position_error_median
       << std::setprecision(2) << " % of the scene extent), max "
       << pose_vs_gt.position_error_max << ".\n\n";
  }
  md << "| stage | seconds |\n|---|---|\n";
  double total = 0;
  for (const auto& [stage, s] : seconds) {
    md << "| " << stage << " | " << s << " |\n";
    total += s;
  }
  md << "| **total** | " << total << " |\n";
  return md.str();
}

ReconstructionReport RunReconstruction(const std::string& image_path,
                                       const std::string& workspace,
                                       const PipelineOptions& options) {
  namespace fs = std::filesystem;
  ReconstructionReport report;
  report.matcher =
      options.matcher.type + (options.matching.as_dense ? " (as dense)" : "");
  report.image_path = image_path;
  report.workspace_path = workspace;
  fs::create_directories(workspace);
  const std::string database_path = workspace + "/database.db";
  const std::string log_path = workspace + "/colmap.log";
  // Fail before any long work when colmap is missing.
  ColmapRunner colmap(options.colmap_path, log_path);
  report.colmap_version = colmap.Version();
  std::unique_ptr<Matcher> matcher = CreateMatcher(options.matcher);

  Database database(database_path, Database::Mode::kCreate);
  Timer timer;
  const ImageImportSummary imported =
      ImportImages(image_path, options.image_reader, &database);
  report.seconds["import"] = timer.ElapsedSeconds();
  report.num_images = static_cast<int>(database.NumImages());
  std::cerr << "import: " << imported.num_imported << " new, "
            << imported.num_existing << " already in the database, "
            << imported.skipped.size() << " skipped, "
            << imported.num_exif_focal << " with EXIF focal length"
            << std::endl;

  timer.Restart();
  const std::vector<ImagePair> pairs = SelectPairs(options.pairs, database);
  WritePairsFile(workspace + "/pairs.txt", pairs, database.ReadAllImages());
  report.num_pairs = pairs.size();
  report.seconds["pairs"] = timer.ElapsedSeconds();

  timer.Restart();
  report.matching =
      MatchPairs(image_path, pairs, matcher.get(), options.matching, &database);
  report.seconds["match"] = timer.ElapsedSeconds();

  if (report.matching.dense) {
    timer.Restart();
    TrackBuilderOptions tracks = options.tracks;
    tracks.mode = TrackModeFromName(options.tracks_mode);
    report.tracks = BuildTracksInDatabase(tracks, &database);
    report.seconds["tracks"] = timer.ElapsedSeconds();
    std::cerr << "tracks: " << report.tracks.num_keypoints << " keypoints, "
              << report.tracks.num_output_matches << " matches from "
              << report.tracks.num_input_matches << " raw" << std::endl;
  }

  timer.Restart();
  VerificationOptions verification = options.verification;
  verification.colmap_path = colmap.binary();
  const VerificationSummary verified =
      VerifyPairs(pairs, verification, workspace, &database);
  report.num_verified_pairs = verified.num_verified;
  report.seconds["verify"] = timer.ElapsedSeconds();
  std::cerr << "verify: " << verified.num_verified << " of "
            << verified.num_pairs << " pairs verified" << std::endl;

  timer.Restart();
  const std::string sparse = workspace + "/sparse";
  fs::remove_all(sparse);  // A rerun maps afresh from the database.
  std::map<std::string, std::string> mapper;
  mapper["num_threads"] = std::to_string(options.mapper.num_threads);
  mapper["min_num_matches"] = std::to_string(options.mapper.min_num_matches);
  mapper["extract_colors"] = options.mapper.extract_colors ? "1" : "0";
  mapper["init_min_tri_angle"] =
      std::to_string(options.mapper.init_min_tri_angle);
  mapper["tri_ignore_two_view_tracks"] =
      options.mapper.tri_ignore_two_view_tracks ? "1" : "0";
  std::vector<std::string> models;
  try {
    std::cerr << "map: colmap mapper (log: " << log_path << ")" << std::endl;
    models = colmap.Map(database_path, image_path, sparse, mapper);
  } catch (const std::exception& e) {
    // COLMAP exits non-zero when no model could be made: a result, not a crash.
    std::cerr << "WARNING: " << e.what() << std::endl;
  }
  report.seconds["map"] = timer.ElapsedSeconds();
  report.num_models = static_cast<int>(models.size());

  timer.Restart();
  for (const auto& model : models) {
    const ModelStats stats = colmap.Analyze(model);
    if (stats.registered_images > report.model.registered_images ||
        (stats.registered_images == report.model.registered_images &&
         stats.num_points3D > report.model.num_points3D)) {
      report.model = stats;
      report.model_path = model;
    }
  }
  if (!options.gt_model_path.empty() && !report.model_path.empty()) {
    const std::string txt = workspace + "/sparse_txt";
    fs::create_directories(txt);
    colmap.Run("model_converter",
               {"--input_path",
                report.model_path,
                "--output_path",
                txt,
                "--output_type",
                "TXT"});
    report.pose_vs_gt = ComparePoses(
        ReadModelImagesText(txt), ReadModelImagesText(options.gt_model_path));
    report.has_gt = true;
  }
  report.seconds["analyze"] = timer.ElapsedSeconds();
  WriteFileAtomic(workspace + "/report.json", report.ToJson());
  WriteFileAtomic(workspace + "/report.md", report.ToMarkdown());
  return report;
}

}  // namespace l2m
