#include "l2m_core/weights/safetensors.h"

#include "l2m_core/weights/checkpoint.h"
#include "tests/test_utils.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace l2m {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string HeaderBlob(const std::string& json, const std::string& data) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) {
    s[i] = static_cast<char>((static_cast<uint64_t>(json.size()) >> (8 * i)) &
                             0xff);
  }
  return s + json + data;
}

template <typename F>
std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::pair<std::string, at::Tensor>> AllDtypes() {
  at::manual_seed(3);
  const at::Tensor base = at::randn({3, 5});
  return {
      {"f32", base},
      {"f64", base.to(at::kDouble)},
      {"f16", base.to(at::kHalf)},
      {"bf16", base.to(at::kBFloat16)},
      {"i64", at::arange(-3, 4, at::TensorOptions().dtype(at::kLong))},
      {"i32", at::arange(7, at::TensorOptions().dtype(at::kInt))},
      {"i16", at::arange(5, at::TensorOptions().dtype(at::kShort))},
      {"i8", at::arange(-2, 3, at::TensorOptions().dtype(at::kChar))},
      {"u8", at::arange(250, 256, at::TensorOptions().dtype(at::kByte))},
      {"bool", base > 0},
      {"scalar", at::scalar_tensor(7, at::TensorOptions().dtype(at::kLong))},
      {"empty", at::zeros({0, 4})},
      {"transposed", base.t()},  // Non-contiguous input.
  };
}

TEST(Safetensors, RoundTripAllDtypes) {
  test::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  const auto tensors = AllDtypes();
  WriteSafetensors(path, tensors, {{"format", "pt"}, {"note", "x"}});
  // No temporary left behind.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);

  const StateDict sd = ReadSafetensors(path);
  EXPECT_EQ(sd.format, "safetensors");
  EXPECT_EQ(sd.metadata.at("note"), "x");
  ASSERT_EQ(sd.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].first);
    EXPECT_EQ(sd.tensors[i].first, tensors[i].first);  // Order kept.
    const at::Tensor& got = sd.tensors[i].second;
    EXPECT_EQ(got.scalar_type(), tensors[i].second.scalar_type());
    EXPECT_EQ(got.sizes(), tensors[i].second.sizes());
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_TRUE(at::equal(got, tensors[i].second));
  }
  // Header: 8-byte aligned data section, valid JSON.
  const SafetensorsHeader header = ReadSafetensorsHeader(path);
  EXPECT_EQ(header.data_offset % 8, 0u);
  EXPECT_EQ(header.entries.size(), tensors.size());
  EXPECT_EQ(header.entries.front().begin, 0u);
  for (size_t i = 1; i < header.entries.size(); ++i) {
    EXPECT_EQ(header.entries[i].begin, header.entries[i - 1].end);
  }
  EXPECT_EQ(header.data_offset + header.entries.back().end, header.file_size);

  // ReadCheckpoint recognises safetensors too, and the in-memory reader
  // agrees.
  const StateDict via_checkpoint = ReadCheckpoint(path);
  EXPECT_EQ(via_checkpoint.format, "safetensors");
  EXPECT_EQ(via_checkpoint.size(), tensors.size());
  const StateDict mem = ReadSafetensorsFromMemory(ReadFile(path), "mem");
  EXPECT_TRUE(at::equal(mem.tensors[3].second, sd.tensors[3].second));
}

TEST(Safetensors, OverwriteIsAtomicAndWriteErrorsAreClear) {
  test::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  WriteSafetensors(path, {{"a", at::ones({2})}});
  WriteSafetensors(path, {{"b", at::zeros({3})}});
  const StateDict sd = ReadSafetensors(path);
  ASSERT_EQ(sd.size(), 1u);
  EXPECT_EQ(sd.tensors[0].first, "b");

  EXPECT_NE(ErrorOf([&] {
              WriteSafetensors(dir.File("no/such/dir.safetensors"),
                               {{"a", at::ones({1})}});
            }).find("Cannot write safetensors"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] {
              WriteSafetensors(dir.File("d.safetensors"),
                               {{"a", at::ones({1})}, {"a", at::ones({1})}});
            }).find("duplicate"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] {
              WriteSafetensors(dir.File("c.safetensors"),
                               {{"c", at::ones({1}, at::kComplexFloat)}});
            }).find("cannot be stored"),
            std::string::npos);
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  test::TempDir dir;
  const std::string good = dir.File("good.safetensors");
  WriteSafetensors(good, {{"a", at::arange(6.0).view({2, 3})}});
  const std::string bytes = ReadFile(good);
  const std::string path = dir.File("bad.safetensors");

  WriteFile(path, bytes.substr(0, bytes.size() - 4));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("truncated"),
            std::string::npos);
  WriteFile(path, bytes.substr(0, 5));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("truncated"),
            std::string::npos);

  WriteFile(path, HeaderBlob("{\"a\": [", ""));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("corrupt JSON"),
            std::string::npos);
  WriteFile(path,
            HeaderBlob(R"({"a":{"dtype":"F32","shape":[2],)"
                       R"("data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[1],)"
                       R"("data_offsets":[4,8]}})",
                       std::string(8, '\0')));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("overlap"),
            std::string::npos);
  WriteFile(path,
            HeaderBlob(R"({"a":{"dtype":"F32","shape":[3],)"
                       R"("data_offsets":[0,8]}})",
                       std::string(8, '\0')));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("need 12"),
            std::string::npos);
  WriteFile(path,
            HeaderBlob(R"({"a":{"dtype":"X9","shape":[1],)"
                       R"("data_offsets":[0,4]}})",
                       std::string(4, '\0')));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("dtype 'X9'"),
            std::string::npos);
  WriteFile(path,
            HeaderBlob(R"({"a":{"dtype":"F32","shape":[-1],)"
                       R"("data_offsets":[0,4]}})",
                       std::string(4, '\0')));
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("non-negative"),
            std::string::npos);
  std::string huge = bytes;
  huge[7] = 0x7f;
  WriteFile(path, huge);
  EXPECT_NE(ErrorOf([&] { ReadSafetensors(path); }).find("implausible"),
            std::string::npos);
}

TEST(Safetensors, HeaderLengthThatLooksLikeAPickleIsStillSafetensors) {
  // A header of 0x280 bytes starts the file with 0x80 0x02, like a pickle.
  test::TempDir dir;
  const std::string path = dir.File("m.safetensors");
  WriteSafetensors(path, {{"a", at::ones({2})}}, {{"pad", ""}});
  const size_t padded0 = ReadSafetensorsHeader(path).data_offset - 8;
  ASSERT_LT(padded0, 0x280u);
  // The unpadded header grows by one byte per pad character and is at most
  // 7 bytes shorter than the padded one.
  bool hit = false;
  for (size_t k = 0x280 - padded0; k <= 0x280 - padded0 + 8 && !hit; ++k) {
    WriteSafetensors(
        path, {{"a", at::ones({2})}}, {{"pad", std::string(k, 'x')}});
    hit = ReadSafetensorsHeader(path).data_offset == 8 + 0x280;
  }
  ASSERT_TRUE(hit);
  const StateDict sd = ReadCheckpoint(path);
  EXPECT_EQ(sd.format, "safetensors");
  EXPECT_EQ(sd.size(), 1u);
}

}  // namespace
}  // namespace l2m
