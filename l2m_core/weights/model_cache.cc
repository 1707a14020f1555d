#include "l2m_core/weights/model_cache.h"

#include "l2m_core/weights/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace l2m {
namespace {

constexpr char kSuffix[] = ".safetensors";

std::string Join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& item : items) s += (s.empty() ? "" : ",") + item;
  return s;
}

std::string ResolveDir(const std::string& cache_dir) {
  return cache_dir.empty() ? DefaultModelCacheDir() : cache_dir;
}

}  // namespace

std::string DefaultModelCacheDir() {
  const char* dir = std::getenv("L2M_MODEL_DIR");
  if (dir != nullptr && dir[0] != '\0') return dir;
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] == '\0') {
    throw std::runtime_error(
        "no model cache folder: set L2M_MODEL_DIR (or HOME)");
  }
  return std::string(home) + "/.cache/l2m/models";
}

void ValidateModelName(const std::string& name) {
  const bool chars_ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '+';
  });
  if (name.empty() || name.size() > 128 || name[0] == '.' || !chars_ok) {
    throw std::invalid_argument(
        "invalid model name '" + name +
        "': use letters, digits and . _ + - (not starting with '.')");
  }
}

std::string CachedModelPath(const std::string& name,
                            const std::string& cache_dir) {
  ValidateModelName(name);
  return ResolveDir(cache_dir) + "/" + name + kSuffix;
}

std::string ImportSummary::ToString() const {
  std::string s =
      "imported '" + source + "' (" + source_format + ") as '" + name + "'\n";
  s += "  file: " + output_path + " (" + std::to_string(file_bytes) +
       " bytes)\n";
  s += "  tensors: " + std::to_string(num_tensors) +
       ", parameters: " + std::to_string(num_elements) + "\n";
  s += "  dtypes:";
  for (const auto& [dtype, count] : dtype_counts) {
    s += " " + dtype + " x" + std::to_string(count);
  }
  s += "\n";
  if (!unwrapped.empty()) s += "  unwrapped: " + Join(unwrapped) + "\n";
  if (!stripped_prefixes.empty()) {
    s += "  stripped prefixes: " + Join(stripped_prefixes) + "\n";
  }
  if (!skipped.empty()) {
    s += "  skipped non-tensor entries: " + std::to_string(skipped.size()) +
         "\n";
  }
  return s;
}

ImportSummary ImportCheckpointToCache(const std::string& path,
                                      const std::string& name,
                                      const std::string& cache_dir,
                                      const ImportOptions& options) {
  options.Check();
  ValidateModelName(name);
  const std::string dir = ResolveDir(cache_dir);
  const std::string output = dir + "/" + name + kSuffix;
  std::error_code ec;
  if (!options.overwrite && std::filesystem::exists(output, ec)) {
    throw std::runtime_error("model '" + name + "' already exists in " + dir +
                             " (overwrite it explicitly)");
  }
  const StateDict sd = ReadCheckpoint(path, options.read);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error("Cannot create model cache folder '" + dir +
                             "': " + ec.message());
  }
  ImportSummary summary;
  summary.name = name;
  summary.source = path;
  summary.output_path = output;
  summary.source_format = sd.format;
  summary.unwrapped = sd.unwrapped;
  summary.stripped_prefixes = sd.stripped_prefixes;
  summary.skipped = sd.skipped;
  summary.num_tensors = sd.size();
  summary.num_elements = sd.NumElements();
  for (const auto& entry : sd.tensors) {
    ++summary.dtype_counts[DtypeName(entry.second.scalar_type())];
  }
  std::map<std::string, std::string> metadata = sd.metadata;
  metadata["format"] = "pt";
  metadata["l2m.source"] = std::filesystem::path(path).filename().string();
  metadata["l2m.source_format"] = sd.format;
  metadata["l2m.unwrapped"] = Join(sd.unwrapped);
  metadata["l2m.stripped_prefixes"] = Join(sd.stripped_prefixes);
  for (const auto& [key, value] : options.extra_metadata) {
    metadata[key] = value;
  }
  WriteSafetensors(output, sd.tensors, metadata);
  summary.file_bytes = std::filesystem::file_size(output, ec);
  return summary;
}

std::vector<CachedModelInfo> ListCachedModels(const std::string& cache_dir) {
  const std::string dir = ResolveDir(cache_dir);
  std::vector<CachedModelInfo> models;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return models;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    const size_t n = sizeof(kSuffix) - 1;
    // Skips temporaries of an import in progress ("x.safetensors.tmp.*").
    if (file.size() <= n || file.compare(file.size() - n, n, kSuffix) != 0 ||
        !entry.is_regular_file(ec)) {
      continue;
    }
    CachedModelInfo info;
    info.name = file.substr(0, file.size() - n);
    info.path = entry.path().string();
    info.file_bytes = entry.file_size(ec);
    try {
      const SafetensorsHeader header = ReadSafetensorsHeader(info.path);
      info.metadata = header.metadata;
      info.num_tensors = header.entries.size();
      for (const SafetensorsEntry& e : header.entries) {
        int64_t numel = 1;
        for (int64_t d : e.shape) numel *= d;
        info.num_elements += numel;
        ++info.dtype_counts[DtypeName(e.dtype)];
      }
    } catch (const std::exception& e) {
      info.error = e.what();
    }
    models.push_back(std::move(info));
  }
  std::sort(models.begin(),
            models.end(),
            [](const CachedModelInfo& a, const CachedModelInfo& b) {
              return a.name < b.name;
            });
  return models;
}

StateDict ReadModelWeights(const std::string& name_or_path,
                           const std::string& cache_dir) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(name_or_path, ec)) {
    return ReadCheckpoint(name_or_path);
  }
  bool valid_name = true;
  try {
    ValidateModelName(name_or_path);
  } catch (const std::invalid_argument&) {
    valid_name = false;
  }
  const std::string dir = ResolveDir(cache_dir);
  const std::string cached = dir + "/" + name_or_path + kSuffix;
  if (valid_name && std::filesystem::is_regular_file(cached, ec)) {
    return ReadSafetensors(cached);
  }
  std::string names;
  for (const CachedModelInfo& m : ListCachedModels(dir)) {
    names += (names.empty() ? "" : ", ") + m.name;
  }
  throw std::runtime_error(
      "no checkpoint file '" + name_or_path +
      "' and no cached model of that "
      "name in " +
      dir + " (cached: " + (names.empty() ? "none" : names) +
      "; add one with ImportCheckpointToCache / `l2m models import`)");
}

}  // namespace l2m
