#pragma once

#include "l2m_core/weights/checkpoint.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace l2m {

// The model cache holds one `<name>.safetensors` per imported checkpoint:
// tensors only, wrappers unwrapped and prefixes stripped, so later runs never
// parse a pickle again.

// $L2M_MODEL_DIR, else $HOME/.cache/l2m/models. Throws when neither is set.
std::string DefaultModelCacheDir();

// Throws std::invalid_argument unless `name` is a plain file stem
// ([A-Za-z0-9._+-], not starting with '.', at most 128 characters).
void ValidateModelName(const std::string& name);

// `<cache_dir>/<name>.safetensors`; an empty cache_dir means the default.
std::string CachedModelPath(const std::string& name,
                            const std::string& cache_dir = "");

struct ImportOptions {
  CheckpointReadOptions read;
  // Replace an existing cache entry of the same name.
  bool overwrite = false;
  // Added to the cache entry's metadata (e.g. the download URL, checksum).
  std::map<std::string, std::string> extra_metadata;

  void Check() const { read.Check(); }
};

struct ImportSummary {
  std::string name;
  std::string source;       // The checkpoint that was read.
  std::string output_path;  // The safetensors file written.
  std::string source_format;
  std::vector<std::string> unwrapped;
  std::vector<std::string> stripped_prefixes;
  std::vector<std::string> skipped;
  size_t num_tensors = 0;
  int64_t num_elements = 0;
  std::map<std::string, size_t> dtype_counts;  // "float32" -> tensors.
  uint64_t file_bytes = 0;

  // Several lines for a CLI.
  std::string ToString() const;
};

// Reads any supported checkpoint (see ReadCheckpoint) and writes it to
// `<cache_dir>/<name>.safetensors` atomically, creating the folder. The
// source name, format, unwrapping and stripping are kept in the file's
// metadata.
ImportSummary ImportCheckpointToCache(
    const std::string& path,
    const std::string& name,
    const std::string& cache_dir = "",
    const ImportOptions& options = ImportOptions());

struct CachedModelInfo {
  std::string name;
  std::string path;
  uint64_t file_bytes = 0;
  size_t num_tensors = 0;
  int64_t num_elements = 0;
  std::map<std::string, size_t> dtype_counts;
  std::map<std::string, std::string> metadata;
  std::string error;  // Non-empty when the file could not be read.
};

// Models in the cache, sorted by name; reads headers only. A missing folder
// gives an empty list; an unreadable file is listed with `error` set.
std::vector<CachedModelInfo> ListCachedModels(
    const std::string& cache_dir = "");

// Weights for a run: `name_or_path` is a checkpoint file (any format
// ReadCheckpoint takes) when such a file exists, else the name of a cached
// model. The error for an unknown name lists the cached models.
StateDict ReadModelWeights(const std::string& name_or_path,
                           const std::string& cache_dir = "");

}  // namespace l2m
