#include "l2m_core/weights/key_list.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace l2m {
namespace {

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return fields;
}

int64_t ParseInt(const std::string& text, const std::string& where) {
  if (text.empty()) throw std::runtime_error(where + ": empty number");
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (end != text.c_str() + text.size() || errno == ERANGE || v < 0) {
    throw std::runtime_error(where + ": bad number '" + text + "'");
  }
  return static_cast<int64_t>(v);
}

std::vector<int64_t> ParseShape(const std::string& text,
                                const std::string& where) {
  std::vector<int64_t> shape;
  if (text.empty()) return shape;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    shape.push_back(ParseInt(text.substr(start, comma - start), where));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return shape;
}

struct KeyLine {
  TensorSpec spec;
  std::vector<std::string> extra;
};

std::vector<KeyLine> ReadLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("Cannot open key list '" + path +
                             "': " + std::strerror(errno));
  }
  std::vector<KeyLine> lines;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::string where = path + ":" + std::to_string(number);
    std::vector<std::string> f = SplitTabs(line);
    if (f.size() < 3 || f[0].empty()) {
      throw std::runtime_error(where + ": expected name<TAB>dtype<TAB>shape");
    }
    KeyLine k;
    k.spec.name = f[0];
    k.spec.dtype = f[1];
    k.spec.shape = ParseShape(f[2], where);
    k.extra.assign(f.begin() + 3, f.end());
    lines.push_back(std::move(k));
  }
  return lines;
}

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) {
      throw std::runtime_error("shape " + ShapeString(shape) + " overflows");
    }
  }
  return n;
}

template <typename T>
void AppendList(const char* title,
                const std::vector<T>& items,
                size_t max_items,
                std::string* out) {
  if (items.empty()) return;
  *out +=
      "\n  " + std::string(title) + " (" + std::to_string(items.size()) + "):";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i == max_items) {
      *out +=
          "\n    ... and " + std::to_string(items.size() - max_items) + " more";
      break;
    }
    *out += "\n    " + items[i];
  }
}

}  // namespace

std::vector<TensorSpec> ReadKeyList(const std::string& path) {
  std::vector<TensorSpec> specs;
  for (KeyLine& k : ReadLines(path)) specs.push_back(std::move(k.spec));
  return specs;
}

std::vector<TensorSpec> SpecsOf(const StateDict& state_dict) {
  std::vector<TensorSpec> specs;
  specs.reserve(state_dict.size());
  for (const auto& [name, t] : state_dict.tensors) {
    specs.push_back({name,
                     DtypeName(t.scalar_type()),
                     std::vector<int64_t>(t.sizes().begin(), t.sizes().end())});
  }
  return specs;
}

std::string KeyComparison::ToString(size_t max_per_list) const {
  std::string s = ok() ? "keys match: " : "keys differ: ";
  s += std::to_string(matched) + " of " + std::to_string(expected_count) +
       " expected tensors match (" + std::to_string(actual_count) +
       " present); " + std::to_string(missing.size()) + " missing, " +
       std::to_string(unexpected.size()) + " unexpected, " +
       std::to_string(shape_mismatch.size()) + " with another shape, " +
       std::to_string(dtype_mismatch.size()) + " with another dtype";
  AppendList("missing", missing, max_per_list, &s);
  AppendList("unexpected", unexpected, max_per_list, &s);
  AppendList("shape mismatch", shape_mismatch, max_per_list, &s);
  AppendList("dtype mismatch", dtype_mismatch, max_per_list, &s);
  return s;
}

KeyComparison CompareKeys(const std::vector<TensorSpec>& expected,
                          const std::vector<TensorSpec>& actual,
                          bool compare_dtypes) {
  KeyComparison c;
  c.expected_count = expected.size();
  c.actual_count = actual.size();
  std::unordered_map<std::string, const TensorSpec*> by_name;
  for (const TensorSpec& a : actual) by_name.emplace(a.name, &a);
  std::unordered_map<std::string, bool> expected_names;
  for (const TensorSpec& e : expected) {
    expected_names.emplace(e.name, true);
    c.expected_elements += Numel(e.shape);
    const auto it = by_name.find(e.name);
    if (it == by_name.end()) {
      c.missing.push_back(e.name);
      continue;
    }
    bool good = true;
    if (it->second->shape != e.shape) {
      c.shape_mismatch.push_back(e.name + ": expected " + ShapeString(e.shape) +
                                 ", got " + ShapeString(it->second->shape));
      good = false;
    }
    if (compare_dtypes && it->second->dtype != e.dtype) {
      c.dtype_mismatch.push_back(e.name + ": expected " + e.dtype + ", got " +
                                 it->second->dtype);
      good = false;
    }
    if (good) ++c.matched;
  }
  for (const TensorSpec& a : actual) {
    if (expected_names.count(a.name) == 0) c.unexpected.push_back(a.name);
  }
  return c;
}

StateDict ReadRawTensorBundle(const std::string& tsv_path,
                              const std::string& bin_path) {
  const std::vector<KeyLine> lines = ReadLines(tsv_path);
  std::ifstream bin(bin_path, std::ios::binary);
  if (!bin) {
    throw std::runtime_error("Cannot open '" + bin_path +
                             "': " + std::strerror(errno));
  }
  bin.seekg(0, std::ios::end);
  const int64_t bin_size = static_cast<int64_t>(bin.tellg());
  StateDict sd;
  sd.source = bin_path;
  sd.format = "raw";
  for (const KeyLine& k : lines) {
    const std::string where = tsv_path + " '" + k.spec.name + "'";
    if (k.extra.size() < 2) {
      throw std::runtime_error(where + ": needs offset and nbytes columns");
    }
    const int64_t offset = ParseInt(k.extra[0], where);
    const int64_t nbytes = ParseInt(k.extra[1], where);
    const at::ScalarType dtype = DtypeFromName(k.spec.dtype);
    const int64_t numel = Numel(k.spec.shape);
    if (numel * static_cast<int64_t>(c10::elementSize(dtype)) != nbytes) {
      throw std::runtime_error(where + ": nbytes does not match dtype/shape");
    }
    if (offset > bin_size || nbytes > bin_size - offset) {
      throw std::runtime_error(where + ": byte range outside '" + bin_path +
                               "'");
    }
    at::Tensor t = at::empty(k.spec.shape, at::TensorOptions().dtype(dtype));
    bin.seekg(offset);
    if (nbytes > 0 && !bin.read(static_cast<char*>(t.data_ptr()), nbytes)) {
      throw std::runtime_error(where + ": read failed");
    }
    sd.tensors.emplace_back(k.spec.name, std::move(t));
  }
  return sd;
}

}  // namespace l2m
