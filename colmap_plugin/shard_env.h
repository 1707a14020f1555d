#pragma once

// Which shard of a matching plan this process works on, and which GPU it
// uses: from `--shard i/N`, or from the environment that Slurm (job arrays,
// srun steps) or an MPI launcher (Open MPI, MPICH/Intel MPI via PMI) sets.
// No MPI library is needed: the launchers export the rank to every process.

#include <functional>
#include <optional>
#include <string>

namespace l2m {

struct ShardSpec {
  int index = 0;  // 0-based, < count.
  int count = 1;
  // Where the numbers came from: "--shard", "slurm array", "srun",
  // "mpi", ... or "default" (one process does everything).
  std::string source = "default";

  std::string ToString() const;  // "i/N (source)"
};

// Parses "i/N" with 0 <= i < N. Throws std::invalid_argument naming `text`.
ShardSpec ParseShardSpec(const std::string& text);

typedef std::function<std::optional<std::string>(const std::string&)> EnvLookup;
// std::getenv as an EnvLookup.
EnvLookup ProcessEnvironment();

// The shard of this process from the environment:
//  - Slurm job array: SLURM_ARRAY_TASK_ID relative to SLURM_ARRAY_TASK_MIN
//    (and _STEP) out of SLURM_ARRAY_TASK_COUNT;
//  - an MPI launcher: OMPI_COMM_WORLD_RANK/_SIZE, else PMI_RANK/PMI_SIZE
//    (MPICH, Intel MPI, srun --mpi=pmi2);
//  - srun tasks (a job step: SLURM_STEP_ID set): SLURM_PROCID/SLURM_NTASKS.
// An array task that runs several ranks/tasks combines both:
// index = array_index * ranks + rank. Nothing set: 0/1.
// Throws std::invalid_argument for malformed or inconsistent values.
ShardSpec ShardFromEnvironment(const EnvLookup& env);

// The node-local rank (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID,
// PMI_LOCAL_RANK, SLURM_LOCALID), or -1 if none is set.
int LocalRankFromEnvironment(const EnvLookup& env);

// One GPU per task. If CUDA_VISIBLE_DEVICES is already set (Slurm's
// --gres=gpu:1 does it) it is kept and the task uses its first device;
// otherwise, with a local rank and `num_devices` > 0, the task is given
// device local_rank % num_devices. Returns the CUDA_VISIBLE_DEVICES value
// to set ("" = leave the environment alone).
std::string GpuForTask(const EnvLookup& env, int num_devices);

// NVIDIA devices visible on this machine (/dev/nvidia0, /dev/nvidia1, ...),
// counted without initialising CUDA.
int CountNvidiaDeviceNodes();

}  // namespace l2m
