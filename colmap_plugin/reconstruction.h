#pragma once

// The main job: photos folder -> COLMAP database -> pairs -> matches ->
// (tracks) -> verification -> colmap mapper -> sparse model + report.

#include "colmap_plugin/colmap_runner.h"
#include "colmap_plugin/image_import.h"
#include "colmap_plugin/matching.h"
#include "colmap_plugin/model_io.h"
#include "colmap_plugin/track_builder.h"
#include "colmap_plugin/verification.h"
#include "matcher_adapters/matcher_factory.h"

#include <map>
#include <string>

namespace l2m {

class OptionManager;

struct PairOptions {
  std::string mode = "exhaustive";  // exhaustive | sequential | file
  int overlap = 10;                 // sequential
  std::string input_path;           // file: `name1 name2` lines
  bool Check(std::string* error) const;
};

struct MapperOptions {
  int num_threads = -1;
  int min_num_matches = 15;
  bool extract_colors = true;
  // Keeps tracks seen by two images only (COLMAP's default drops them when
  // triangulating; they are the whole point of a naive dense export).
  bool tri_ignore_two_view_tracks = true;
  // Smallest triangulation angle of the initial pair (degrees; COLMAP: 16).
  // Small-baseline sequences (video) need less.
  double init_min_tri_angle = 16;
};

// Every option of the pipeline, by section.
struct PipelineOptions {
  ImageImportOptions image_reader;
  PairOptions pairs;
  MatcherOptions matcher;
  MatchingOptions matching;
  TrackBuilderOptions tracks;
  std::string tracks_mode = "merge";
  VerificationOptions verification;
  MapperOptions mapper;
  std::string colmap_path = "colmap";
  // Optional COLMAP text model of the true cameras (images.txt): the report
  // then compares the recovered poses with it.
  std::string gt_model_path;
};

// Registers the options of the given sections with `manager`.
void AddImageReaderOptions(OptionManager* manager, ImageImportOptions* options);
void AddPairOptions(OptionManager* manager, PairOptions* options);
void AddMatcherOptions(OptionManager* manager,
                       MatcherOptions* options,
                       MatchingOptions* matching);
void AddTrackOptions(OptionManager* manager,
                     TrackBuilderOptions* options,
                     std::string* mode);
void AddVerificationOptions(OptionManager* manager,
                            VerificationOptions* options);
void AddMapperOptions(OptionManager* manager, MapperOptions* options);

std::vector<ImagePair> SelectPairs(const PairOptions& options,
                                   const Database& database);

struct ReconstructionReport {
  std::string matcher;
  std::string image_path;
  std::string workspace_path;
  std::string model_path;  // The largest model.
  int num_images = 0;      // In the database.
  int num_models = 0;
  ModelStats model;
  size_t num_pairs = 0;
  size_t num_verified_pairs = 0;
  MatchingSummary matching;
  TrackBuilderStats tracks;
  std::map<std::string, double> seconds;  // Per stage.
  std::string colmap_version;
  bool has_gt = false;
  PoseComparison pose_vs_gt;

  std::string ToJson() const;
  std::string ToMarkdown() const;
};

// Runs everything into `workspace` (created). Resumable: rerunning reuses
// the database (imported images, matched pairs) and redoes only what is
// missing, then re-verifies and maps.
ReconstructionReport RunReconstruction(const std::string& image_path,
                                       const std::string& workspace,
                                       const PipelineOptions& options);

}  // namespace l2m
