#pragma once

// The matching stage: a matcher adapter over a pair list, results into the
// database. Resumable: pairs (and images) already stored are skipped; each
// pair is written in its own transaction, so a killed run loses at most the
// pair in flight and never leaves half of one.
//
//  - sparse matcher: keypoints + descriptors per image, then index matches
//    per pair straight into COLMAP's tables (native tracks);
//  - dense matcher (or a sparse one with as_dense): positions per pair into
//    l2m_raw_matches; BuildTracksInDatabase() then makes the keypoints.

#include "colmap_plugin/database.h"
#include "colmap_plugin/pairs.h"
#include "colmap_plugin/track_builder.h"
#include "matcher_adapters/matcher.h"

#include <string>
#include <vector>

namespace l2m {

struct MatchingOptions {
  // Run a sparse matcher as if it were dense: keep only each pair's matched
  // positions (keypoint identities dropped), each moved by a uniform random
  // offset of up to `dense_jitter_px` pixels per axis. Measures the track
  // builder on real data before any learned dense matcher exists.
  bool as_dense = false;
  double dense_jitter_px = 0.25;
  // Images kept decoded in memory (each pair needs two).
  int image_cache_size = 16;
  // Replace the stored matches of another matcher instead of refusing.
  bool overwrite = false;
  unsigned seed = 0;

  bool Check(std::string* error) const;
};

struct MatchingSummary {
  size_t num_pairs = 0;
  size_t num_skipped = 0;  // Already in the database.
  size_t num_matched = 0;
  size_t num_matches = 0;
  double seconds = 0;
  bool dense = false;
};

// `image_dir` holds the images named in the database.
MatchingSummary MatchPairs(const std::string& image_dir,
                           const std::vector<ImagePair>& pairs,
                           Matcher* matcher,
                           const MatchingOptions& options,
                           Database* database);

// Reads every pair's raw matches, builds per-image keypoints and one-to-one
// matches, and replaces keypoints/matches/two-view geometries in one
// transaction.
TrackBuilderStats BuildTracksInDatabase(const TrackBuilderOptions& options,
                                        Database* database);

}  // namespace l2m
