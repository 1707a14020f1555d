#include "tests/tensor_fixture.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace test {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(s);
  while (std::getline(in, field, sep)) out.push_back(field);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

std::vector<int64_t> ParseShape(const std::string& s) {
  std::vector<int64_t> shape;
  if (s.empty()) return shape;
  for (const std::string& d : Split(s, ',')) shape.push_back(std::stoll(d));
  return shape;
}

std::pair<torch::Dtype, int64_t> ParseDtype(const std::string& s) {
  if (s == "float32") return {torch::kFloat32, 4};
  if (s == "int64") return {torch::kInt64, 8};
  if (s == "uint8") return {torch::kUInt8, 1};
  if (s == "float64") return {torch::kFloat64, 8};
  if (s == "int32") return {torch::kInt32, 4};
  throw std::runtime_error("unknown fixture dtype '" + s + "'");
}

}  // namespace

TensorFixture TensorFixture::Load(const std::string& stem) {
  std::ifstream tsv(stem + ".tsv");
  if (!tsv) throw std::runtime_error("cannot open " + stem + ".tsv");
  std::ifstream bin(stem + ".bin", std::ios::binary | std::ios::ate);
  if (!bin) throw std::runtime_error("cannot open " + stem + ".bin");
  const int64_t file_size = bin.tellg();

  TensorFixture fixture;
  std::string line;
  int line_no = 0;
  while (std::getline(tsv, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = Split(line, '\t');
    const std::string where = stem + ".tsv:" + std::to_string(line_no);
    if (f.size() != 5) throw std::runtime_error(where + ": expected 5 fields");
    const auto [dtype, elem_size] = ParseDtype(f[1]);
    const std::vector<int64_t> shape = ParseShape(f[2]);
    const int64_t offset = std::stoll(f[3]);
    const int64_t nbytes = std::stoll(f[4]);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (numel * elem_size != nbytes)
      throw std::runtime_error(where + ": nbytes does not match the shape");
    if (offset < 0 || offset + nbytes > file_size)
      throw std::runtime_error(where + ": past the end of the .bin");
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    bin.seekg(offset);
    // x86/ARM hosts are little-endian like the files.
    bin.read(static_cast<char*>(t.data_ptr()), nbytes);
    if (!bin) throw std::runtime_error(where + ": read failed");
    if (fixture.tensors_.count(f[0]) > 0)
      throw std::runtime_error(where + ": duplicate name " + f[0]);
    fixture.names_.push_back(f[0]);
    fixture.tensors_[f[0]] = t;
  }
  return fixture;
}

const at::Tensor& TensorFixture::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw std::out_of_range("fixture has no tensor '" + name + "'");
  return it->second;
}

std::vector<KeySpec> ReadKeyList(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<KeySpec> keys;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = Split(line, '\t');
    if (f.size() != 3)
      throw std::runtime_error(path + ": expected 3 fields in '" + line + "'");
    keys.push_back({f[0], f[1], ParseShape(f[2])});
  }
  return keys;
}

}  // namespace test
}  // namespace l2m
