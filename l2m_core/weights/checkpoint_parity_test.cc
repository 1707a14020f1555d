// Exact values of the fixtures' real torch.save files (torch 1.13 and 2.x).

#include "l2m_core/weights/checkpoint.h"
#include "l2m_core/weights/key_list.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/safetensors.h"
#include "tests/test_utils.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <caffe2/serialize/inline_container.h>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>

namespace l2m {
namespace {

nlohmann::ordered_json LoadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::ordered_json::parse(in);
}

struct FormatCase {
  const char* file;
  std::vector<std::string> unwrapped;
  std::vector<std::string> stripped;
  const char* format;
};

const std::vector<FormatCase>& FormatCases() {
  static const std::vector<FormatCase> cases = {
      {"ordered_dict.pth", {}, {}, "zip"},
      {"ordered_dict_fp16.pth", {}, {}, "zip"},
      {"ordered_dict_legacy.pth", {}, {}, "legacy"},
      {"lightning.ckpt", {"state_dict"}, {"model."}, "zip"},
      {"wrapped_module.pth", {"model"}, {"module."}, "zip"},
  };
  return cases;
}

void CheckAgainstExpected(const std::string& dir, const FormatCase& c) {
  const std::string path = dir + c.file;
  SCOPED_TRACE(path);
  const nlohmann::ordered_json expected = LoadJson(dir + "expected.json");
  const StateDict sd = ReadCheckpoint(path);
  EXPECT_EQ(sd.format, c.format);
  EXPECT_EQ(sd.unwrapped, c.unwrapped);
  EXPECT_EQ(sd.stripped_prefixes, c.stripped);
  const bool fp16 = std::strstr(c.file, "fp16") != nullptr;
  size_t index = 0;
  for (auto it = expected.begin(); it != expected.end(); ++it) {
    if (it.key() == "views.pth") continue;
    ASSERT_LT(index, sd.size());
    const auto& [name, t] = sd.tensors[index++];
    EXPECT_EQ(name, it.key());  // Same order as state_dict().
    std::string dtype = it.value()["dtype"].get<std::string>();
    if (fp16 && dtype == "float32") dtype = "float16";
    EXPECT_EQ(DtypeName(t.scalar_type()), dtype) << name;
    EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()),
              it.value()["shape"].get<std::vector<int64_t>>())
        << name;
    const double sum = t.to(at::kDouble).sum().item<double>();
    const double first = t.flatten()[0].to(at::kDouble).item<double>();
    const double want_sum = it.value()["sum"].get<double>();
    const double want_first = it.value()["first"].get<double>();
    if (fp16 && t.scalar_type() == at::kHalf) {
      // Each element is the fp32 value rounded to half: |error| <= 2^-11 |x|.
      const double tol =
          t.to(at::kDouble).abs().sum().item<double>() * std::ldexp(1.0, -11);
      EXPECT_NEAR(sum, want_sum, tol + 1e-12) << name;
      EXPECT_EQ(first,
                static_cast<double>(static_cast<float>(
                    c10::Half(static_cast<float>(want_first)))))
          << name;
    } else {
      // float64 sums of the same float32 values, maybe in another order.
      EXPECT_NEAR(sum, want_sum, 1e-12 * std::max(1.0, std::fabs(want_sum)))
          << name;
      EXPECT_EQ(first, want_first) << name;
    }
  }
  EXPECT_EQ(index, sd.size());
}

TEST(CheckpointParity, Torch113Formats) {
  L2M_REQUIRE_SHARED(shared);
  for (const FormatCase& c : FormatCases()) {
    CheckAgainstExpected(shared + "/fixtures/checkpoint_formats/", c);
  }
}

TEST(CheckpointParity, Torch2xFormats) {
  L2M_REQUIRE_SHARED(shared);
  for (const FormatCase& c : FormatCases()) {
    CheckAgainstExpected(shared + "/fixtures/checkpoint_formats/torch2x/", c);
  }
}

TEST(CheckpointParity, ViewsShareOneStorage) {
  L2M_REQUIRE_SHARED(shared);
  for (const char* sub : {"", "torch2x/"}) {
    const std::string dir = shared + "/fixtures/checkpoint_formats/" + sub;
    SCOPED_TRACE(dir);
    const nlohmann::ordered_json expected =
        LoadJson(dir + "expected.json")["views.pth"];
    const StateDict sd = ReadCheckpoint(dir + "views.pth");
    ASSERT_NE(sd.Find("t"), nullptr);
    ASSERT_NE(sd.Find("row"), nullptr);
    ASSERT_NE(sd.Find("base"), nullptr);
    const at::Tensor& t = *sd.Find("t");
    const at::Tensor& row = *sd.Find("row");
    const at::Tensor& base = *sd.Find("base");
    EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()),
              expected["t"]["shape"].get<std::vector<int64_t>>());
    EXPECT_FALSE(t.is_contiguous());
    const auto first_row =
        expected["t"]["first_row"].get<std::vector<double>>();
    const auto row_values = expected["row"].get<std::vector<double>>();
    const at::Tensor t0 = t[0].to(at::kDouble).contiguous();
    EXPECT_EQ(std::vector<double>(t0.data_ptr<double>(),
                                  t0.data_ptr<double>() + t0.numel()),
              first_row);
    const at::Tensor r = row.to(at::kDouble).contiguous();
    EXPECT_EQ(std::vector<double>(r.data_ptr<double>(),
                                  r.data_ptr<double>() + r.numel()),
              row_values);
    EXPECT_EQ(t.storage().data(), base.storage().data());
    EXPECT_EQ(row.storage().data(), base.storage().data());
    EXPECT_TRUE(at::equal(t, base.t()));
  }
}

// The roma_parity .pth/.pt files against their raw .bin/.tsv twins, bit for
// bit.
TEST(CheckpointParity, RomaParityFilesMatchRawTwins) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity/";
  for (const std::string stem : {"weights_matcher",
                                 "weights_dino",
                                 "run_main",
                                 "run_norm",
                                 "run_noup",
                                 "sampling"}) {
    SCOPED_TRACE(stem);
    const std::string pth =
        dir + stem + (stem.rfind("weights", 0) == 0 ? ".pth" : ".pt");
    const auto start = std::chrono::steady_clock::now();
    const StateDict sd = ReadCheckpoint(pth);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::cout << "[ timing ] ReadCheckpoint(" << stem << "): " << sd.size()
              << " tensors, " << sd.NumElements() << " elements, "
              << seconds * 1000 << " ms\n";
    const StateDict raw =
        ReadRawTensorBundle(dir + stem + ".tsv", dir + stem + ".bin");
    ASSERT_EQ(sd.size(), raw.size());
    for (size_t i = 0; i < sd.size(); ++i) {
      const auto& [name, t] = sd.tensors[i];
      const auto& [raw_name, r] = raw.tensors[i];
      ASSERT_EQ(name, raw_name);
      ASSERT_EQ(t.scalar_type(), r.scalar_type()) << name;
      ASSERT_EQ(t.sizes(), r.sizes()) << name;
      const at::Tensor c = t.contiguous();
      EXPECT_EQ(std::memcmp(c.data_ptr(), r.data_ptr(), c.nbytes()), 0)
          << name << " differs";
    }
  }
}

TEST(CheckpointParity, SmallMatcherKeysAreFullSizeKeys) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity/";
  const StateDict matcher = ReadCheckpoint(dir + "weights_matcher.pth");
  const KeyComparison c =
      CompareKeys(ReadKeyList(dir + "keys_matcher_full.txt"), SpecsOf(matcher));
  // Same naming; the small graph only has fewer blocks and narrower layers.
  EXPECT_TRUE(c.unexpected.empty()) << c.ToString(20);
  EXPECT_TRUE(c.dtype_mismatch.empty()) << c.ToString(20);
  EXPECT_EQ(c.missing.size(), 303u);
  const StateDict dino = ReadCheckpoint(dir + "weights_dino.pth");
  const KeyComparison d =
      CompareKeys(ReadKeyList(dir + "keys_dinov2_vitl14.txt"), SpecsOf(dino));
  EXPECT_TRUE(d.unexpected.empty()) << d.ToString(20);
}

// Protocol-2 pickle of OrderedDict{name: _rebuild_tensor_v2(storage i, ...)}
// laid out as torch.save(model.state_dict()) writes it.
std::string StateDictPickle(const std::vector<TensorSpec>& specs) {
  const auto str = [](const std::string& s) {
    std::string out = "X";
    for (int i = 0; i < 4; ++i) {
      out.push_back(static_cast<char>((s.size() >> (8 * i)) & 0xff));
    }
    return out + s;
  };
  const auto int32 = [](int64_t v) {
    std::string out = "J";
    for (int i = 0; i < 4; ++i) {
      out.push_back(
          static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
    }
    return out;
  };
  std::string p =
      "\x80\x02"
      "ccollections\nOrderedDict\n)R(";
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    int64_t numel = 1;
    for (int64_t d : s.shape) numel *= d;
    p += str(s.name) + "ctorch._utils\n_rebuild_tensor_v2\n((" + str("storage");
    p +=
        s.dtype == "int64" ? "ctorch\nLongStorage\n" : "ctorch\nFloatStorage\n";
    p += str(std::to_string(i)) + str("cpu") + int32(numel) + "tQ" + int32(0) +
         "(";
    for (int64_t d : s.shape) p += int32(d);
    p += "t(";
    int64_t stride = 1;
    std::vector<int64_t> strides(s.shape.size());
    for (size_t d = s.shape.size(); d-- > 0;) {
      strides[d] = stride;
      stride *= s.shape[d];
    }
    for (int64_t st : strides) p += int32(st);
    p += "t\x89"
         "ccollections\nOrderedDict\n)Rt"
         "R";
  }
  return p + "u.";
}

// Run with --gtest_also_run_disabled_tests: writes a 445 MB checkpoint with
// the full-size RoMa/L2M++ matcher layout and times reading it.
TEST(CheckpointParity, DISABLED_FullSizeMatcherTiming) {
  L2M_REQUIRE_SHARED(shared);
  const auto specs =
      ReadKeyList(shared + "/fixtures/roma_parity/keys_matcher_full.txt");
  test::TempDir dir;
  const std::string path = dir.File("roma_outdoor_like.pth");
  {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    const std::string pickle = StateDictPickle(specs);
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      const at::ScalarType dtype = DtypeFromName(specs[i].dtype);
      const at::Tensor t = dtype == at::kLong
                               ? at::full(specs[i].shape, 7, at::kLong)
                               : at::randn(specs[i].shape);
      writer.writeRecord("data/" + std::to_string(i), t.data_ptr(), t.nbytes());
    }
    writer.writeEndOfFile();
  }
  const auto time = [](const char* what, auto&& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::cout << "[ timing ] " << what << ": " << s << " s\n";
  };
  StateDict sd;
  time("ReadCheckpoint (zip, 603 tensors, 445 MB)",
       [&] { sd = ReadCheckpoint(path); });
  sd = StateDict();
  // Again, now that freed memory can be reused (fresh pages are slow here).
  time("ReadCheckpoint, second time", [&] { sd = ReadCheckpoint(path); });
  const KeyComparison c = CompareKeys(specs, SpecsOf(sd));
  EXPECT_TRUE(c.ok()) << c.ToString(10);
  ImportSummary summary;
  time("ImportCheckpointToCache",
       [&] { summary = ImportCheckpointToCache(path, "roma", dir.path()); });
  time("ReadSafetensors", [&] { sd = ReadSafetensors(summary.output_path); });
  EXPECT_EQ(sd.size(), specs.size());
}

}  // namespace
}  // namespace l2m
