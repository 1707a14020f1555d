#include "datasets/npz.h"

#include "l2m_core/util/file.h"

#include <zip.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace l2m {

std::map<std::string, NpyArray> ReadNpzArchive(const std::string& path) {
  if (!FileExists(path)) throw std::runtime_error(path + ": file not found");
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &error);
  if (!archive) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, error);
    const std::string what = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw std::runtime_error(path +
                             ": not a readable .npz (zip) archive: " + what);
  }
  std::unique_ptr<zip_t, int (*)(zip_t*)> closer(archive, zip_close);
  std::map<std::string, NpyArray> arrays;
  const zip_int64_t n = zip_get_num_entries(archive, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive, i, 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
      throw std::runtime_error(path + ": unreadable zip entry " +
                               std::to_string(i));
    std::string name = st.name;
    const std::string where = path + ":" + name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0)
      continue;
    // Bound what a corrupt header can make us allocate (the largest array of
    // the benchmarks is a few MB).
    if (st.size > (zip_uint64_t{1} << 32))
      throw std::runtime_error(where + ": member too large");
    zip_file_t* file = zip_fopen_index(archive, i, 0);
    if (!file)
      throw std::runtime_error(
          where + ": cannot open member: " + zip_strerror(archive));
    std::string bytes(st.size, '\0');
    const zip_int64_t got = zip_fread(file, bytes.data(), st.size);
    zip_fclose(file);
    if (got != static_cast<zip_int64_t>(st.size))
      throw std::runtime_error(where + ": truncated or corrupt member");
    name.resize(name.size() - 4);
    arrays[name] = ParseNpy(bytes, where);
  }
  return arrays;
}

void WriteNpzArchive(const std::string& path,
                     const std::map<std::string, NpyArray>& arrays) {
  const std::string tmp = path + ".tmp";
  std::remove(tmp.c_str());
  int error = 0;
  zip_t* archive = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (!archive) throw std::runtime_error(path + ": cannot create zip archive");
  // libzip reads the buffers at zip_close(), so they must outlive it.
  std::vector<std::string> buffers;
  buffers.reserve(arrays.size());
  for (const auto& [key, array] : arrays) {
    buffers.push_back(EncodeNpyArray(array));
    zip_source_t* source = zip_source_buffer(
        archive, buffers.back().data(), buffers.back().size(), 0);
    const std::string member = key + ".npy";
    if (!source || zip_file_add(archive,
                                member.c_str(),
                                source,
                                ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8) < 0) {
      if (source) zip_source_free(source);
      zip_discard(archive);
      throw std::runtime_error(path + ": cannot add " + member);
    }
  }
  if (zip_close(archive) != 0) {
    const std::string what = zip_strerror(archive);
    zip_discard(archive);
    throw std::runtime_error(path + ": cannot write: " + what);
  }
  std::filesystem::rename(tmp, path);
}

const NpyArray& NpzArray(const std::map<std::string, NpyArray>& arrays,
                         const std::string& key,
                         const std::string& path) {
  auto it = arrays.find(key);
  if (it == arrays.end()) {
    std::string keys;
    for (const auto& entry : arrays)
      keys += (keys.empty() ? "" : ", ") + entry.first;
    throw std::runtime_error(path + ": no array '" + key + "' (found: " + keys +
                             ")");
  }
  return it->second;
}

}  // namespace l2m
