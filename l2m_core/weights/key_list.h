#pragma once

#include "l2m_core/weights/state_dict.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace l2m {

// Name, dtype and shape of one tensor, as in the fixtures' key lists.
struct TensorSpec {
  std::string name;
  std::string dtype;  // DtypeName() spelling: "float32", "int64", ...
  std::vector<int64_t> shape;
};

// Reads `name<TAB>dtype<TAB>d0,d1,...` lines (keys_matcher_full.txt etc.);
// extra columns (the offset/nbytes of .tsv indexes) are ignored, as are
// empty lines and lines starting with '#'. An empty shape field is 0-dim.
std::vector<TensorSpec> ReadKeyList(const std::string& path);

std::vector<TensorSpec> SpecsOf(const StateDict& state_dict);

// Result of comparing an expected key list with an actual one.
struct KeyComparison {
  std::vector<std::string> missing;     // Expected but absent.
  std::vector<std::string> unexpected;  // Present but not expected.
  // "name: expected [a, b], got [c, d]" / "name: expected float32, got ...".
  std::vector<std::string> shape_mismatch;
  std::vector<std::string> dtype_mismatch;
  size_t matched = 0;  // Same name, shape and (when compared) dtype.
  size_t expected_count = 0;
  size_t actual_count = 0;
  int64_t expected_elements = 0;

  bool ok() const {
    return missing.empty() && unexpected.empty() && shape_mismatch.empty() &&
           dtype_mismatch.empty();
  }
  // One-line summary, then every problem, at most `max_per_list` per kind.
  std::string ToString(size_t max_per_list = static_cast<size_t>(-1)) const;
};

KeyComparison CompareKeys(const std::vector<TensorSpec>& expected,
                          const std::vector<TensorSpec>& actual,
                          bool compare_dtypes = true);

// Reads a raw tensor bundle: `.tsv` index ("#" header, then
// name<TAB>dtype<TAB>shape<TAB>offset<TAB>nbytes) + `.bin` with the C-order
// little-endian bytes at those offsets (the fixtures' raw twins of .pth
// files). Throws std::runtime_error on any inconsistency.
StateDict ReadRawTensorBundle(const std::string& tsv_path,
                              const std::string& bin_path);

}  // namespace l2m
