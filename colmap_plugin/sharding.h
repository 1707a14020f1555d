#pragma once

// Matching a big collection in pieces that are each safe to rerun:
//
//   plan  : the master database's images + a sorted pair list, cut into
//           fixed chunks (PLAN/plan.json, pairs.bin, images.tsv); pairs are
//           sorted by blocks of images (COLMAP's exhaustive-matcher order), so
//           a chunk needs few images and workers keep memory bounded;
//   match : one process per shard i/N takes the i-th of N contiguous runs of
//           chunks and writes each chunk's raw matches to its own SQLite file
//           PLAN/shards/chunk-NNNNNN.db (temporary name, fsync, rename), so
//           a chunk file is complete or absent; finished chunks are skipped;
//   merge : every chunk file is checked (format, plan, chunk, pair ids, row
//           sizes, checksum, file length) before any is copied into the
//           master database's l2m_raw_matches (pair_id is the key: no
//           duplicates); merged chunks are recorded, so a rerun only adds
//           what changed.
//
// Chunks are fixed by the plan, not by the number of workers, so a resume
// with any other number of workers produces the same chunk files. Tracks,
// verification and mapping then read the master database as before.

#include "colmap_plugin/database.h"
#include "colmap_plugin/pairs.h"
#include "colmap_plugin/shard_env.h"
#include "matcher_adapters/matcher.h"

#include <cstdint>
#include <string>
#include <vector>

namespace l2m {

struct PlanOptions {
  // Pairs per chunk: the unit of work, of atomic output and of loss when a
  // worker dies.
  int chunk_size = 256;
  // Pairs are ordered by (block of image 1, block of image 2, image 1,
  // image 2) with blocks of this many images (by id): a chunk touches at
  // most ~2 blocks of images.
  int block_size = 50;
  // Replace a different existing plan (and delete its chunk files).
  bool overwrite = false;

  bool Check(std::string* error) const;
};

struct MatchPlan {
  std::string plan_path;  // The plan folder.
  std::string plan_id;    // 16 hex digits: images + pairs + chunk size.
  std::string database_path;
  std::string image_path;
  int64_t num_images = 0;
  int64_t num_pairs = 0;
  int64_t chunk_size = 0;
  int64_t num_chunks = 0;

  int64_t ChunkBegin(int64_t chunk) const { return chunk * chunk_size; }
  int64_t ChunkEnd(int64_t chunk) const {
    return std::min(num_pairs, (chunk + 1) * chunk_size);
  }
  std::string ChunkPath(int64_t chunk) const;
  // The i-th of N contiguous runs of chunks: [C * i / N, C * (i + 1) / N).
  std::vector<int64_t> ChunksOfShard(const ShardSpec& shard) const;
};

// Writes the plan folder (created). Rerunning with the same images, pairs and
// chunk size changes nothing; a different plan over existing chunk files is
// refused unless options.overwrite. Throws std::runtime_error naming the file.
MatchPlan WritePlan(const std::string& plan_path,
                    const Database& database,
                    const std::string& image_path,
                    std::vector<ImagePair> pairs,
                    const PlanOptions& options);

// Reads PLAN/plan.json and checks pairs.bin and images.tsv against it.
MatchPlan ReadPlan(const std::string& plan_path);

// Orders pairs as a plan does: by image blocks, then by ids.
void SortPairsByImageBlocks(const std::vector<DbImage>& images,
                            int block_size,
                            std::vector<ImagePair>* pairs);

// Pairs [begin, end) of the plan's sorted list (reads only those bytes).
std::vector<ImagePair> ReadPlanPairs(const MatchPlan& plan,
                                     int64_t begin,
                                     int64_t end);
std::vector<DbImage> ReadPlanImages(const MatchPlan& plan);

struct ShardMatchOptions {
  // Keep at most this many matches per pair (highest scores; 0 = all).
  int max_num_matches = 32768;
  // Decoded images / per-image features kept in memory (LRU).
  int image_cache_size = 8;
  int feature_cache_size = 128;
  // Sparse matchers: move each stored position by a uniform random offset of
  // up to this many pixels (seeded per pair: the same whatever the shard).
  double jitter_px = 0;
  unsigned seed = 0;

  bool Check(std::string* error) const;
};

struct ShardMatchSummary {
  int64_t num_chunks = 0;       // Chunks of this shard.
  int64_t num_done_before = 0;  // Already complete, skipped.
  int64_t num_redone = 0;       // Present but invalid, matched again.
  int64_t num_pairs = 0;        // Pairs matched now.
  int64_t num_matches = 0;
  double seconds = 0;
};

// What a chunk file stores for "matcher": dense matchers their name, sparse
// ones "<name>/as_dense" (positions, keypoint identities dropped; the track
// builder makes the keypoints), as `l2m match --Matching.as_dense 1`.
std::string ShardMatcherKey(const Matcher& matcher);

// Matches the chunks of `shard` that have no valid chunk file yet.
ShardMatchSummary MatchShard(const MatchPlan& plan,
                             const ShardSpec& shard,
                             Matcher* matcher,
                             const ShardMatchOptions& options);

struct ShardFileInfo {
  std::string matcher;
  int64_t num_pairs = 0;
  int64_t num_matches = 0;
  std::string digest;
};

// Checks chunk file `chunk` of `plan` completely (header and length, format,
// plan id, chunk index, the exact pair ids of the chunk, row sizes, checksum).
// Throws std::runtime_error "Shard '<file>' <problem>" on any defect.
ShardFileInfo CheckShardFile(const MatchPlan& plan, int64_t chunk);

struct MergeSummary {
  int64_t num_chunks = 0;
  int64_t num_merged = 0;          // Copied now.
  int64_t num_already_merged = 0;  // Same checksum already in the database.
  int64_t num_pairs = 0;           // Pairs of the plan in the database.
  int64_t num_matches = 0;
  std::string matcher;
  double seconds = 0;
};

// Checks every chunk file, then copies them into `database` (the plan's
// master database: same images). Nothing is written unless every chunk is
// present and valid; the error names the missing or defective files.
MergeSummary MergeShards(const MatchPlan& plan, Database* database);

// Checksum of a database's raw matches (pair ids and data, in pair order):
// equal databases give equal digests whatever produced them.
std::string RawMatchesDigest(const Database& database);

}  // namespace l2m
