#include "colmap_plugin/shard_env.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace l2m {
namespace {

int ParseNonNegative(const std::string& text, const std::string& what) {
  size_t end = 0;
  long value = -1;
  try {
    value = std::stol(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  if (end != text.size() || text.empty() || value < 0 || value > 1 << 30) {
    throw std::invalid_argument(what + " is '" + text +
                                "', not a non-negative integer");
  }
  return static_cast<int>(value);
}

std::optional<int> EnvInt(const EnvLookup& env, const std::string& name) {
  const auto value = env(name);
  if (!value.has_value() || value->empty()) return std::nullopt;
  return ParseNonNegative(*value, name);
}

}  // namespace

std::string ShardSpec::ToString() const {
  return std::to_string(index) + "/" + std::to_string(count) + " (" + source +
         ")";
}

ShardSpec ParseShardSpec(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) {
    throw std::invalid_argument("--shard '" + text +
                                "': expected i/N, e.g. 0/4 (0 <= i < N)");
  }
  ShardSpec spec;
  spec.index = ParseNonNegative(text.substr(0, slash), "--shard index");
  spec.count = ParseNonNegative(text.substr(slash + 1), "--shard count");
  if (spec.count < 1 || spec.index >= spec.count) {
    throw std::invalid_argument("--shard '" + text +
                                "': expected i/N with 0 <= i < N");
  }
  spec.source = "--shard";
  return spec;
}

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

ShardSpec ShardFromEnvironment(const EnvLookup& env) {
  // Outer level: a Slurm job array task.
  int outer_index = 0, outer_count = 1;
  std::string source;
  if (const auto id = EnvInt(env, "SLURM_ARRAY_TASK_ID")) {
    const auto count = EnvInt(env, "SLURM_ARRAY_TASK_COUNT");
    if (!count.has_value() || *count < 1) {
      throw std::invalid_argument(
          "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
    }
    const int min = EnvInt(env, "SLURM_ARRAY_TASK_MIN").value_or(0);
    const int step =
        std::max(1, EnvInt(env, "SLURM_ARRAY_TASK_STEP").value_or(1));
    if (*id < min || (*id - min) % step != 0 || (*id - min) / step >= *count) {
      throw std::invalid_argument(
          "SLURM_ARRAY_TASK_ID " + std::to_string(*id) +
          " does not fit SLURM_ARRAY_TASK_MIN/STEP/COUNT; submit a plain range "
          "such as --array=0-" +
          std::to_string(*count - 1));
    }
    outer_index = (*id - min) / step;
    outer_count = *count;
    source = "slurm array";
  }
  // Inner level: an MPI rank or an srun task.
  int inner_index = 0, inner_count = 1;
  std::string inner_source;
  const char* kRankSize[][2] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
      {"PMI_RANK", "PMI_SIZE"}};
  for (const auto& [rank_name, size_name] : kRankSize) {
    const auto rank = EnvInt(env, rank_name);
    if (!rank.has_value()) continue;
    const auto size = EnvInt(env, size_name);
    if (!size.has_value() || *size < 1 || *rank >= *size) {
      throw std::invalid_argument(std::string(rank_name) + " is set but " +
                                  size_name + " is missing or too small");
    }
    inner_index = *rank;
    inner_count = *size;
    inner_source = "mpi";
    break;
  }
  // srun exports SLURM_PROCID to each task of a step; a batch script (no
  // step) also has SLURM_PROCID=0 but is one process, whatever --ntasks says.
  if (inner_source.empty() &&
      (env("SLURM_STEP_ID").has_value() || env("SLURM_STEPID").has_value())) {
    if (const auto procid = EnvInt(env, "SLURM_PROCID")) {
      const auto ntasks = EnvInt(env, "SLURM_NTASKS");
      if (ntasks.has_value() && *ntasks > 1) {
        if (*procid >= *ntasks) {
          throw std::invalid_argument(
              "SLURM_PROCID is not smaller than SLURM_NTASKS");
        }
        inner_index = *procid;
        inner_count = *ntasks;
        inner_source = "srun";
      }
    }
  }
  ShardSpec spec;
  spec.index = outer_index * inner_count + inner_index;
  spec.count = outer_count * inner_count;
  if (!source.empty() && !inner_source.empty()) {
    spec.source = source + " x " + inner_source;
  } else if (!source.empty()) {
    spec.source = source;
  } else if (!inner_source.empty()) {
    spec.source = inner_source;
  }
  return spec;
}

int LocalRankFromEnvironment(const EnvLookup& env) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK",
                           "MPI_LOCALRANKID",
                           "PMI_LOCAL_RANK",
                           "SLURM_LOCALID"}) {
    if (const auto rank = EnvInt(env, name)) return *rank;
  }
  return -1;
}

std::string GpuForTask(const EnvLookup& env, int num_devices) {
  if (env("CUDA_VISIBLE_DEVICES").has_value()) return "";
  const int local_rank = LocalRankFromEnvironment(env);
  if (local_rank < 0 || num_devices <= 0) return "";
  return std::to_string(local_rank % num_devices);
}

int CountNvidiaDeviceNodes() {
  int count = 0;
  while (std::filesystem::exists("/dev/nvidia" + std::to_string(count))) {
    ++count;
  }
  return count;
}

}  // namespace l2m
