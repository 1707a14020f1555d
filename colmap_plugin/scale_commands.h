#pragma once

// The `l2m` commands for big collections (see sharding.h, retrieval.h):
//   l2m plan    --database_path DB --image_path IMG --plan_path JOB [pairs]
//   l2m match   --plan_path JOB [--shard i/N]   (or Slurm / MPI environment)
//   l2m merge   --plan_path JOB [--database_path DB]
//   l2m pairs   --retrieval K --image_path IMG --database_path DB ...

namespace l2m {

int RunPlanCommand(int argc, char** argv);
int RunShardMatchCommand(int argc, char** argv);
int RunMergeCommand(int argc, char** argv);
int RunRetrievalPairsCommand(int argc, char** argv);

// True if argv holds `--name` or `--name=...`.
bool HasOption(int argc, char** argv, const char* name);

}  // namespace l2m
