#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace l2m {

// Named tensors in file order, plus a note of where they came from. Tensors
// read from a torch checkpoint keep torch's storage sharing (views of one
// storage stay views), as torch.load would give them.
struct StateDict {
  std::vector<std::pair<std::string, at::Tensor>> tensors;

  std::string source;  // Path (or caller-given name) it was read from.
  // "zip" (torch >= 1.6), "legacy" (pre-1.6 torch.save), "safetensors",
  // "raw" (.bin + .tsv twin) or "" when built in memory.
  std::string format;
  // Wrapper keys unwrapped to reach the tensors, outermost first, e.g.
  // {"state_dict"} for Lightning or {"model"} for DINOv2/FiT3D fine-tunes.
  std::vector<std::string> unwrapped;
  // Key prefixes removed from every name, e.g. {"module."} or {"model."}.
  std::vector<std::string> stripped_prefixes;
  // Entries of the state dict that were not tensors (skipped), by name.
  std::vector<std::string> skipped;
  // Safetensors "__metadata__" (string to string).
  std::map<std::string, std::string> metadata;

  size_t size() const { return tensors.size(); }
  bool empty() const { return tensors.empty(); }
  // nullptr when absent.
  const at::Tensor* Find(const std::string& name) const;
  // Sum of numel() over all tensors.
  int64_t NumElements() const;
  // "zip checkpoint, unwrapped 'state_dict', stripped 'model.'" style note.
  std::string Describe() const;
};

// PyTorch-style dtype names ("float32", "float16", "bfloat16", "int64", ...),
// as used by the key lists and .tsv indexes of the fixtures.
std::string DtypeName(at::ScalarType dtype);
// Inverse of DtypeName; also accepts "float", "half", "long", "double".
// Throws std::runtime_error for unknown names.
at::ScalarType DtypeFromName(const std::string& name);

// "[4, 3, 3, 3]" for messages.
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace l2m
