#include "colmap_plugin/scale_commands.h"

#include "colmap_plugin/option_manager.h"
#include "colmap_plugin/reconstruction.h"
#include "colmap_plugin/retrieval.h"
#include "colmap_plugin/sharding.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace l2m {

bool HasOption(int argc, char** argv, const char* name) {
  const std::string flag = std::string("--") + name;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == flag || arg.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

int RunPlanCommand(int argc, char** argv) {
  std::string database_path, image_path, plan_path;
  PairOptions pairs;
  PlanOptions plan_options;
  OptionManager options(
      "plan",
      "Cuts the pair list into fixed chunks for sharded matching:\n"
      "PLAN/plan.json, pairs.bin (sorted pairs), images.tsv, shards/.\n"
      "Then: `l2m match --plan_path PLAN --shard i/N` per worker (or under "
      "Slurm / mpirun),\n`l2m merge --plan_path PLAN`, `l2m tracks`, `l2m "
      "verify`, `colmap mapper`.\nRerunning with the same inputs changes "
      "nothing.");
  options.AddRequired("database_path",
                      &database_path,
                      "The master database with the images (`l2m "
                      "image_import`).");
  options.AddRequired("image_path", &image_path, "The image folder.");
  options.AddRequired("plan_path", &plan_path, "The plan folder (created).");
  AddPairOptions(&options, &pairs);
  options.Add("Plan.chunk_size",
              &plan_options.chunk_size,
              "Pairs per chunk (the unit of work and of atomic output).");
  options.Add("Plan.block_size",
              &plan_options.block_size,
              "Pairs are ordered by blocks of this many images (locality).");
  options.AddBool("Plan.overwrite",
                  &plan_options.overwrite,
                  "Replace a different plan in PLAN (deletes its chunks).");
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kReadOnly);
  const MatchPlan plan = WritePlan(
      plan_path, db, image_path, SelectPairs(pairs, db), plan_options);
  std::cout << "Plan " << plan.plan_id << ": " << plan.num_pairs << " pairs of "
            << plan.num_images << " images in " << plan.num_chunks
            << " chunks of " << plan.chunk_size << " (" << plan.plan_path
            << ")\n";
  return 0;
}

int RunShardMatchCommand(int argc, char** argv) {
  std::string plan_path, shard_text;
  MatcherOptions matcher;
  MatchingOptions matching;  // as_dense, jitter, seed only.
  ShardMatchOptions shard_options;
  OptionManager options(
      "match",
      "Matches one shard i/N of a plan (`l2m plan`): the i-th of N contiguous "
      "runs of chunks; "
      "each chunk's raw matches go to PLAN/shards/chunk-NNNNNN.db, written "
      "atomically; complete chunks are skipped.\nThe shard comes from "
      "--shard i/N, else from Slurm (SLURM_ARRAY_TASK_ID/_COUNT, srun's "
      "SLURM_PROCID/SLURM_NTASKS) or MPI (OMPI_COMM_WORLD_RANK/_SIZE, "
      "PMI_RANK/PMI_SIZE), else 0/1 (all chunks).");
  options.AddRequired("plan_path", &plan_path, "The plan folder.");
  options.Add("shard", &shard_text, "i/N: this worker's shard (0 <= i < N).");
  AddMatcherOptions(&options, &matcher, &matching);
  options.Add("Matching.max_num_matches",
              &shard_options.max_num_matches,
              "Keep at most this many matches per pair (highest scores; 0 = "
              "all).");
  options.Add("Matching.feature_cache_size",
              &shard_options.feature_cache_size,
              "Sparse matchers: per-image features kept in memory (LRU).");
  if (!options.Parse(argc, argv)) return 0;
  // Shards always store positions; --Matching.as_dense 1 adds the jitter of
  // the unsharded as-dense mode (seeded per pair, so shard-independent).
  shard_options.jitter_px = matching.as_dense ? matching.dense_jitter_px : 0.0;
  shard_options.seed = matching.seed;
  const ShardSpec shard = shard_text.empty()
                              ? ShardFromEnvironment(ProcessEnvironment())
                              : ParseShardSpec(shard_text);
  const MatchPlan plan = ReadPlan(plan_path);
  // One GPU per task: Slurm's CUDA_VISIBLE_DEVICES, else local rank modulo
  // the number of devices (before CUDA is initialised by the matcher).
  if (matcher.type == "l2m" && matcher.l2m.device == "cuda") {
    const std::string gpu =
        GpuForTask(ProcessEnvironment(), CountNvidiaDeviceNodes());
    if (!gpu.empty()) {
      ::setenv("CUDA_VISIBLE_DEVICES", gpu.c_str(), 1);
      std::cerr << "shard " << shard.ToString()
                << ": CUDA_VISIBLE_DEVICES=" << gpu
                << " (local rank modulo device count)" << std::endl;
    }
  }
  auto m = CreateMatcher(matcher);
  const ShardMatchSummary s = MatchShard(plan, shard, m.get(), shard_options);
  std::cout << "Shard " << shard.ToString() << ": " << s.num_chunks
            << " chunks (" << s.num_done_before << " already done"
            << (s.num_redone ? ", " + std::to_string(s.num_redone) +
                                   " invalid ones matched again"
                             : "")
            << "), matched " << s.num_pairs << " pairs, " << s.num_matches
            << " matches in " << s.seconds << " s\n";
  return 0;
}

int RunMergeCommand(int argc, char** argv) {
  std::string plan_path, database_path;
  OptionManager options(
      "merge",
      "Checks every chunk file of a plan (complete, this plan's, intact) and "
      "copies the raw matches into the master database (no duplicates; "
      "rerunning adds only what changed). Then run `l2m tracks`.");
  options.AddRequired("plan_path", &plan_path, "The plan folder.");
  options.Add("database_path",
              &database_path,
              "The master database (default: the plan's).");
  if (!options.Parse(argc, argv)) return 0;
  const MatchPlan plan = ReadPlan(plan_path);
  Database db(database_path.empty() ? plan.database_path : database_path,
              Database::Mode::kReadWrite);
  const MergeSummary s = MergeShards(plan, &db);
  std::cout << "Merged " << s.num_merged << " of " << s.num_chunks
            << " chunks (" << s.num_already_merged
            << " already merged): " << s.num_pairs << " pairs, "
            << s.num_matches << " raw matches of '" << s.matcher << "' in "
            << s.seconds << " s; raw matches digest " << RawMatchesDigest(db)
            << "\n";
  return 0;
}

int RunRetrievalPairsCommand(int argc, char** argv) {
  std::string database_path, output_path, image_path;
  RetrievalOptions retrieval;
  OptionManager options(
      "pairs",
      "Retrieval pairs: each image with its K most similar images by a global "
      "descriptor (exact top-K, block-wise: never an N x N matrix).\n"
      "Descriptor `gist`: classical, needs no weights; `dinov2_gem`: GeM over "
      "the matcher's DINOv2\npatch tokens (--Retrieval.weights).");
  options.AddRequired(
      "database_path", &database_path, "The database with the images.");
  options.AddRequired("output_path", &output_path, "The pair file to write.");
  options.AddRequired("image_path", &image_path, "The image folder.");
  options.Add(
      "retrieval", &retrieval.num_neighbors, "K: neighbours per image.");
  options.Add("Retrieval.descriptor",
              &retrieval.descriptor,
              "Global descriptor: gist or dinov2_gem.");
  options.Add("Retrieval.weights",
              &retrieval.weights,
              "dinov2_gem: DINOv2 checkpoint file or cached model name.");
  options.Add(
      "Retrieval.device", &retrieval.device, "dinov2_gem: cpu or cuda.");
  options.Add("Retrieval.input_size",
              &retrieval.input_size,
              "dinov2_gem: square input size (multiple of 14).");
  options.Add("Retrieval.sequential_overlap",
              &retrieval.sequential_overlap,
              "Also each image with the next N by name (0 = off).");
  options.Add("Retrieval.block_rows",
              &retrieval.block_rows,
              "Query rows per similarity block.");
  options.Add("Retrieval.block_cols",
              &retrieval.block_cols,
              "Database columns per similarity block.");
  if (!options.Parse(argc, argv)) return 0;
  Database db(database_path, Database::Mode::kReadOnly);
  const auto images = db.ReadAllImages();
  const auto pairs = RetrievalPairs(image_path, images, retrieval);
  WritePairsFile(output_path, pairs, images);
  std::cout << "Wrote " << pairs.size()
            << " retrieval pairs (K = " << retrieval.num_neighbors << ", "
            << retrieval.descriptor << ") to " << output_path << "\n";
  return 0;
}

}  // namespace l2m
