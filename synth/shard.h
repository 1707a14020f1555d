#pragma once

// The compact training format: a shard file holds many synthetic pairs, each
// a set of named tensors, with a JSON index at the end so a trainer can open
// the file, read the index once and seek straight to any pair's tensors.
//
//   "L2MSHRD1"                      8-byte magic
//   tensor blobs ...                raw little-endian C-order arrays or PNG
//   index                           UTF-8 JSON (see WriteShard)
//   uint64 index_offset, uint64 index_size, "L2MSIDX1"   24-byte footer
//
// Index: {"version": 1, "records": [{"name": ..., "meta": {...},
//   "tensors": {"image1": {"offset", "nbytes", "encoding": "png"|"raw",
//   "dtype": "uint8"|"float32", "shape": [H, W, C]}, ...}}]}.

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <map>
#include <string>
#include <vector>

namespace l2m {

struct ShardTensor {
  cv::Mat value;
  bool png = false;  // Lossless PNG (uint8 images/masks) instead of raw.
};

struct ShardRecord {
  std::string name;
  nlohmann::json meta;
  std::map<std::string, ShardTensor> tensors;
};

// Writes the records atomically to `path` (temp file + rename).
void WriteShard(const std::string& path,
                const std::vector<ShardRecord>& records);

class ShardReader {
 public:
  // Reads the footer and index; throws naming the file if it is not a shard.
  explicit ShardReader(const std::string& path);
  int NumRecords() const { return static_cast<int>(index_["records"].size()); }
  const nlohmann::json& Record(int i) const { return index_["records"][i]; }
  // Decodes one tensor of record i (PNG images come back as OpenCV BGR).
  cv::Mat ReadTensor(int i, const std::string& key) const;

 private:
  std::string path_;
  nlohmann::json index_;
};

}  // namespace l2m
