#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

// Reader of the raw fixture twins (fixtures/*/X.tsv + X.bin, MANIFEST.md §3): a
// `#` header line, then `name<TAB>dtype<TAB>shape<TAB>offset<TAB>nbytes` per
// tensor; the .bin holds the tensors C-order, little-endian, each at its
// (64-byte aligned) offset.

namespace l2m {
namespace test {

class TensorFixture {
 public:
  // `stem` is the path without extension (".../run_main"); reads stem.tsv and
  // stem.bin. Throws std::runtime_error on a malformed index, an unknown dtype
  // or a short file.
  static TensorFixture Load(const std::string& stem);

  bool Has(const std::string& name) const { return tensors_.count(name) > 0; }
  // Throws std::out_of_range naming the tensor when absent.
  const at::Tensor& Get(const std::string& name) const;
  // Names in file order.
  const std::vector<std::string>& names() const { return names_; }
  const std::map<std::string, at::Tensor>& tensors() const { return tensors_; }

 private:
  std::vector<std::string> names_;
  std::map<std::string, at::Tensor> tensors_;
};

// One line of a keys_*.txt list: `name<TAB>dtype<TAB>d0,d1,...` (empty shape =
// 0-dim).
struct KeySpec {
  std::string name;
  std::string dtype;  // "float32" / "int64"
  std::vector<int64_t> shape;
};

std::vector<KeySpec> ReadKeyList(const std::string& path);

}  // namespace test
}  // namespace l2m
