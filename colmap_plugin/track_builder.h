#pragma once

// Dense matches -> per-image keypoints shared by all pairs of the image, so
// that COLMAP can chain them into multi-view tracks.
//
// A dense matcher gives each pair its own positions. Written to COLMAP as
// they are (every pair with its own keypoints), every track has two views and
// the mapper stalls after two images. The builder therefore:
//   1. collects, per image, every matched position of every pair of it
//      ("observations"), each weighted by its match score;
//   2. visits them by decreasing score (ties by pair, then index, so the
//      result does not depend on the order pairs were matched in) and lets
//      each join the keypoint whose seed lies nearest within `merge_radius`
//      pixels, or start a new keypoint (the seed) - a score-ordered greedy
//      clustering on a hash grid, O(N) expected;
//   3. places each keypoint at the score-weighted mean of its observations
//      (sub-pixel), keeps the `max_keypoints_per_image` heaviest;
//   4. re-expresses each pair's matches as keypoint-index pairs and makes
//      them one-to-one per pair (greedy by score), as COLMAP's correspondence
//      graph drops every further match of a keypoint to the same image;
//   5. drops keypoints that no match uses, and renumbers.
// Mode kPerPair reproduces the naive export (for comparison only).

#include "colmap_plugin/database.h"
#include "colmap_plugin/pairs.h"

#include <map>
#include <string>
#include <vector>

namespace l2m {

struct TrackBuilderOptions {
  enum class Mode { kMerge, kPerPair };
  Mode mode = Mode::kMerge;
  // Observations of one image closer than this (pixels) to a keypoint's seed
  // become that keypoint. About the matcher's localisation error: too small
  // splits tracks, too large fuses neighbouring structure.
  double merge_radius = 2.0;
  // Matches scoring below this are ignored.
  double min_score = 0.0;
  // Heaviest keypoints kept per image (0 = no cap).
  int max_keypoints_per_image = 20000;

  bool Check(std::string* error) const;
};

TrackBuilderOptions::Mode TrackModeFromName(const std::string& name);

struct TrackBuilderStats {
  size_t num_input_matches = 0;
  size_t num_observations = 0;
  size_t num_keypoints = 0;
  size_t num_output_matches = 0;
  size_t num_dropped_by_cap = 0;
  size_t num_dropped_one_to_one = 0;
};

struct TrackBuilderResult {
  std::map<image_t, std::vector<DbKeypoint>> keypoints;
  std::map<ImagePair, std::vector<DbMatch>> matches;
  TrackBuilderStats stats;
};

// `pair_matches` are keyed by (smaller id, larger id) with xy1 in the first
// image of the key.
TrackBuilderResult BuildTracks(
    const std::map<ImagePair, RawPairMatches>& pair_matches,
    const TrackBuilderOptions& options);

}  // namespace l2m
