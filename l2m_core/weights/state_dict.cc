#include "l2m_core/weights/state_dict.h"

#include <stdexcept>

namespace l2m {

const at::Tensor* StateDict::Find(const std::string& name) const {
  for (const auto& [key, tensor] : tensors) {
    if (key == name) return &tensor;
  }
  return nullptr;
}

int64_t StateDict::NumElements() const {
  int64_t total = 0;
  for (const auto& entry : tensors) total += entry.second.numel();
  return total;
}

std::string StateDict::Describe() const {
  std::string s = format.empty() ? "in-memory" : format;
  s += " file, " + std::to_string(tensors.size()) + " tensors";
  for (const std::string& key : unwrapped) s += ", unwrapped '" + key + "'";
  for (const std::string& prefix : stripped_prefixes) {
    s += ", stripped '" + prefix + "'";
  }
  if (!skipped.empty()) {
    s += ", skipped " + std::to_string(skipped.size()) + " non-tensor entries";
  }
  return s;
}

namespace {

struct DtypeNameEntry {
  at::ScalarType dtype;
  const char* name;
};

constexpr DtypeNameEntry kDtypeNames[] = {
    {at::kFloat, "float32"},
    {at::kDouble, "float64"},
    {at::kHalf, "float16"},
    {at::kBFloat16, "bfloat16"},
    {at::kLong, "int64"},
    {at::kInt, "int32"},
    {at::kShort, "int16"},
    {at::kChar, "int8"},
    {at::kByte, "uint8"},
    {at::kBool, "bool"},
    {at::kComplexFloat, "complex64"},
    {at::kComplexDouble, "complex128"},
};

}  // namespace

std::string DtypeName(at::ScalarType dtype) {
  for (const auto& e : kDtypeNames) {
    if (e.dtype == dtype) return e.name;
  }
  return c10::toString(dtype);
}

at::ScalarType DtypeFromName(const std::string& name) {
  for (const auto& e : kDtypeNames) {
    if (name == e.name) return e.dtype;
  }
  if (name == "float") return at::kFloat;
  if (name == "double") return at::kDouble;
  if (name == "half") return at::kHalf;
  if (name == "long") return at::kLong;
  if (name == "int") return at::kInt;
  throw std::runtime_error("unknown dtype name '" + name + "'");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace l2m
