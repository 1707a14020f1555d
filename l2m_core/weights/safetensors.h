#pragma once

#include "l2m_core/weights/state_dict.h"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace l2m {

// The safetensors format (8-byte little-endian header length, a JSON header,
// then the tensor bytes) is the project's own cache format for weights: no
// pickle, trivially validated, readable by the Python `safetensors` package.

struct SafetensorsEntry {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // Byte range within the data section.
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // In data-section order.
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // File offset of the data section.
  uint64_t file_size = 0;
};

// Safetensors dtype codes ("F32", "F16", "BF16", "I64", ...).
std::string SafetensorsDtype(at::ScalarType dtype);
at::ScalarType DtypeFromSafetensors(const std::string& code);

// True when `head` (the first bytes of a file of `file_size` bytes) looks like
// safetensors: a plausible header length followed by '{'.
bool LooksLikeSafetensors(const void* head,
                          size_t head_size,
                          uint64_t file_size);

// Reads and validates the header only (cheap: for listing cached models).
// Throws std::runtime_error naming the file on any inconsistency.
SafetensorsHeader ReadSafetensorsHeader(const std::string& path);

// Reads all tensors (CPU, stored dtype, contiguous), in file order.
StateDict ReadSafetensors(const std::string& path);
StateDict ReadSafetensorsFromMemory(const std::string& bytes,
                                    const std::string& source_name);

// Writes tensors (any device/layout; written contiguous from the CPU) in the
// given order. Atomic: a temporary file beside `path`, fsync, then rename, so
// an interrupted import never leaves a half-written cache entry.
void WriteSafetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

}  // namespace l2m
