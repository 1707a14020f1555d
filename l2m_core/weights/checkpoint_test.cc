#include "l2m_core/weights/checkpoint.h"

#include "l2m_core/weights/checkpoint_test_data.h"
#include "tests/test_utils.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <caffe2/serialize/inline_container.h>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace l2m {
namespace {

std::string HexToBytes(const char* hex) {
  std::string out;
  const size_t n = std::strlen(hex);
  for (size_t i = 0; i + 1 < n; i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex + i, 2), 0, 16)));
  }
  return out;
}

std::string TensorBytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// Writes a torch.save-style zip archive with PyTorchStreamWriter.
void WriteZip(const std::string& path,
              const std::string& pickle,
              const std::map<std::string, std::string>& storages) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [key, bytes] : storages) {
    writer.writeRecord("data/" + key, bytes.data(), bytes.size());
  }
  writer.writeEndOfFile();
}

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

// Storages matching checkpoint_test_data.h.
const at::Tensor& StorageA() {
  static const at::Tensor t =
      at::tensor({1.0f, 2.0f, -3.0f, 0.5f, 0.25f, 7.0f}).to(at::kBFloat16);
  return t;
}
const at::Tensor& StorageB() {
  static const at::Tensor t = at::tensor({1.5f, -2.0f, 3.0f, 4.0f});
  return t;
}

std::map<std::string, std::string> LightningStorages() {
  return {{"0", TensorBytes(StorageA())},
          {"1", TensorBytes(StorageB())},
          {"2", TensorBytes(at::tensor({int64_t{7}}))}};
}

// Expects `f` to throw std::runtime_error whose message contains all `parts`.
template <typename F>
void ExpectError(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << parts[0];
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos)
          << "message lacks '" << part << "': " << msg;
    }
  }
}

TEST(Checkpoint, LightningPickleAllProtocols) {
  test::TempDir dir;
  for (int proto = 1; proto <= 5; ++proto) {
    SCOPED_TRACE("protocol " + std::to_string(proto));
    const std::string path = dir.File("p" + std::to_string(proto) + ".ckpt");
    WriteZip(path,
             HexToBytes(test::kLightningPickleHex[proto]),
             LightningStorages());
    const StateDict sd = ReadCheckpoint(path);
    EXPECT_EQ(sd.format, "zip");
    EXPECT_EQ(sd.source, path);
    ASSERT_EQ(sd.size(), 4u);
    EXPECT_EQ(sd.tensors[0].first, "a");
    EXPECT_EQ(sd.tensors[1].first, "b.w");
    EXPECT_EQ(sd.tensors[2].first, "at");
    EXPECT_EQ(sd.tensors[3].first, "n");
    EXPECT_EQ(sd.unwrapped, std::vector<std::string>{"state_dict"});
    EXPECT_EQ(sd.stripped_prefixes, std::vector<std::string>{"model."});
    const at::Tensor& a = sd.tensors[0].second;
    EXPECT_EQ(a.scalar_type(), at::kBFloat16);
    EXPECT_EQ(a.sizes(), at::IntArrayRef({2, 3}));
    EXPECT_TRUE(at::equal(a, StorageA().view({2, 3})));
    EXPECT_TRUE(at::equal(sd.tensors[1].second, StorageB()));
    const at::Tensor& at_view = sd.tensors[2].second;
    EXPECT_FALSE(at_view.is_contiguous());
    EXPECT_TRUE(at::equal(at_view, a.t()));
    EXPECT_EQ(at_view.storage().data(), a.storage().data());  // Shared.
    const at::Tensor& n = sd.tensors[3].second;
    EXPECT_EQ(n.dim(), 0);
    EXPECT_EQ(n.scalar_type(), at::kLong);
    EXPECT_EQ(n.item<int64_t>(), 7);
    EXPECT_EQ(sd.NumElements(), 6 + 4 + 6 + 1);

    const StateDict mem = ReadCheckpointFromMemory(ReadFile(path), "mem");
    ASSERT_EQ(mem.size(), 4u);
    EXPECT_TRUE(at::equal(mem.tensors[2].second, at_view));
  }
}

TEST(Checkpoint, Protocol0PersistentIdIsRejected) {
  // Protocol 0 can only write a persistent id as text; torch cannot load it
  // either.
  test::TempDir dir;
  const std::string path = dir.File("p0.ckpt");
  WriteZip(path, HexToBytes(test::kLightningPickleHex[0]), LightningStorages());
  ExpectError([&] { ReadCheckpoint(path); }, {path, "persistent id"});
}

TEST(Checkpoint, OptionsSelectPrefixAndNoStrip) {
  test::TempDir dir;
  const std::string path = dir.File("c.ckpt");
  WriteZip(path, HexToBytes(test::kLightningPickleHex[2]), LightningStorages());
  CheckpointReadOptions keep;
  keep.strip_prefixes.clear();
  const StateDict raw = ReadCheckpoint(path, keep);
  EXPECT_EQ(raw.tensors[0].first, "model.a");
  EXPECT_TRUE(raw.stripped_prefixes.empty());

  CheckpointReadOptions select;
  select.select_prefix = "model.b.";
  const StateDict b = ReadCheckpoint(path, select);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b.tensors[0].first, "w");

  select.select_prefix = "nothing.";
  ExpectError([&] { ReadCheckpoint(path, select); }, {"nothing."});

  CheckpointReadOptions no_unwrap;
  no_unwrap.unwrap = false;
  ExpectError([&] { ReadCheckpoint(path, no_unwrap); },
              {"no tensors found", "state_dict"});
}

TEST(Checkpoint, StorageOutOfRangeAndMissing) {
  test::TempDir dir;
  const std::string pickle = HexToBytes(test::kLightningPickleHex[2]);
  auto storages = LightningStorages();
  storages["1"] = storages["1"].substr(0, 12);
  const std::string short_path = dir.File("short.ckpt");
  WriteZip(short_path, pickle, storages);
  ExpectError([&] { ReadCheckpoint(short_path); },
              {short_path, "storage out of range", "data/1"});

  storages = LightningStorages();
  storages.erase("2");
  const std::string missing_path = dir.File("missing.ckpt");
  WriteZip(missing_path, pickle, storages);
  ExpectError([&] { ReadCheckpoint(missing_path); },
              {missing_path, "data/2", "missing"});
}

TEST(Checkpoint, NotACheckpoint) {
  test::TempDir dir;
  const std::string text = dir.File("notes.txt");
  WriteFile(text, "hello, this is not a checkpoint\n");
  ExpectError([&] { ReadCheckpoint(text); },
              {text, "not a PyTorch checkpoint"});

  const std::string empty = dir.File("empty.pth");
  WriteFile(empty, "");
  ExpectError([&] { ReadCheckpoint(empty); }, {empty, "empty"});

  ExpectError([&] { ReadCheckpoint(dir.File("absent.pth")); },
              {"absent.pth", "cannot open"});
  ExpectError([&] { ReadCheckpoint(dir.path()); }, {"not a regular file"});

  // A pickle that is not from torch.save.
  const std::string plain = dir.File("plain.pkl");
  WriteFile(plain, std::string("\x80\x02K\x05.", 5));
  ExpectError([&] { ReadCheckpoint(plain); },
              {plain, "not a PyTorch checkpoint", "magic"});

  // A zip archive that is not a torch one.
  const std::string zip = dir.File("other.zip");
  WriteFile(zip, std::string("PK\x03\x04garbage-garbage-garbage", 27));
  ExpectError([&] { ReadCheckpoint(zip); }, {zip, "zip archive"});
}

TEST(Checkpoint, TruncatedAndCorruptFixtures) {
  L2M_REQUIRE_SHARED(shared);
  const std::string fixtures = shared + "/fixtures/checkpoint_formats/";
  test::TempDir dir;
  const std::string zip = ReadFile(fixtures + "ordered_dict.pth");
  const std::string legacy = ReadFile(fixtures + "ordered_dict_legacy.pth");
  ASSERT_GT(zip.size(), 1000u);
  ASSERT_GT(legacy.size(), 1000u);

  const std::string cut_zip = dir.File("cut.pth");
  WriteFile(cut_zip, zip.substr(0, zip.size() / 2));
  ExpectError([&] { ReadCheckpoint(cut_zip); }, {cut_zip, "truncated"});

  // Cut inside the main pickle, then inside the storages.
  const std::string cut_legacy = dir.File("cut_legacy.pth");
  WriteFile(cut_legacy, legacy.substr(0, 500));
  ExpectError([&] { ReadCheckpoint(cut_legacy); }, {cut_legacy, "truncated"});
  WriteFile(cut_legacy, legacy.substr(0, legacy.size() - 10));
  ExpectError([&] { ReadCheckpoint(cut_legacy); }, {cut_legacy, "truncated"});

  // An unknown opcode in the legacy main pickle (byte 300 is inside it).
  std::string bad = legacy;
  bad[300] = static_cast<char>(0xff);
  const std::string bad_legacy = dir.File("bad_legacy.pth");
  WriteFile(bad_legacy, bad);
  ExpectError([&] { ReadCheckpoint(bad_legacy); },
              {bad_legacy, "corrupt pickle at byte 300"});

  // A corrupt pickle inside the zip (LibTorch's miniz skips CRC checks, so
  // the pickle reader must catch it): protocol byte 2 -> 9.
  const size_t pkl =
      caffe2::serialize::PyTorchStreamReader(fixtures + "ordered_dict.pth")
          .getRecordOffset("data.pkl");
  ASSERT_EQ(static_cast<uint8_t>(zip[pkl]), 0x80);
  std::string bad_zip = zip;
  bad_zip[pkl + 1] = 9;
  const std::string bad_zip_path = dir.File("bad_zip.pth");
  WriteFile(bad_zip_path, bad_zip);
  ExpectError([&] { ReadCheckpoint(bad_zip_path); },
              {bad_zip_path,
               "data.pkl",
               "corrupt pickle at byte 0",
               "unsupported pickle protocol 9"});

  // A corrupt central directory.
  bad_zip = zip;
  const size_t central = bad_zip.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(central, std::string::npos);
  bad_zip[central + 2] = 9;
  WriteFile(bad_zip_path, bad_zip);
  ExpectError([&] { ReadCheckpoint(bad_zip_path); },
              {bad_zip_path, "corrupt or truncated zip archive"});
}

// --------------------------------------------------------------------------
// Fuzzing: every mutated input must give std::runtime_error or a result.

struct FuzzStats {
  int runs = 0;
  int ok = 0;
  int errors = 0;
};

template <typename F>
void FuzzOne(F&& f, FuzzStats* stats) {
  ++stats->runs;
  try {
    f();
    ++stats->ok;
  } catch (const std::runtime_error&) {
    ++stats->errors;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "non-runtime_error exception: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "unknown exception";
  }
}

std::string Mutate(const std::string& in, std::mt19937* rng) {
  std::string s = in;
  std::uniform_int_distribution<int> kind(0, 9);
  const int k = kind(*rng);
  if (s.empty()) return s;
  std::uniform_int_distribution<size_t> pos(0, s.size() - 1);
  if (k == 0) {
    s.resize(pos(*rng));  // Truncate.
  } else if (k == 1) {
    s.insert(pos(*rng), 1, static_cast<char>((*rng)() & 0xff));
  } else if (k == 2) {
    s.erase(pos(*rng), 1);
  } else if (k == 3) {
    // Small integers in interesting places: sizes, strides, lengths.
    s[pos(*rng)] = static_cast<char>(
        std::vector<int>{0, 1, 0x7f, 0x80, 0xff}[(*rng)() % 5]);
  } else {
    const int flips = 1 + static_cast<int>((*rng)() % 4);
    for (int i = 0; i < flips; ++i) {
      s[pos(*rng)] ^= static_cast<char>(1 << ((*rng)() % 8));
    }
  }
  return s;
}

TEST(CheckpointFuzz, MutatedPicklesNeverCrash) {
  // Pickle-level fuzz bypasses the zip CRC, so it reaches the interpreter.
  const auto start = std::chrono::steady_clock::now();
  const auto storages = LightningStorages();
  const auto loader = [&](const StorageRecord& r) {
    const auto it = storages.find(r.key);
    if (it == storages.end()) throw std::runtime_error("no storage");
    if (it->second.size() !=
        static_cast<size_t>(r.numel) * c10::elementSize(r.dtype)) {
      throw std::runtime_error("size");
    }
    at::Tensor t = at::empty({static_cast<int64_t>(it->second.size())},
                             at::TensorOptions().dtype(at::kByte));
    std::memcpy(t.data_ptr(), it->second.data(), it->second.size());
    return t;
  };
  std::mt19937 rng(1234);
  FuzzStats stats;
  for (int proto = 1; proto <= 5; ++proto) {
    const std::string pickle = HexToBytes(test::kLightningPickleHex[proto]);
    for (int i = 0; i < 600; ++i) {
      const std::string m = Mutate(pickle, &rng);
      FuzzOne(
          [&] {
            const PickleTree tree = ParsePickle(m.data(), m.size());
            StateDictFromPickle(tree, loader);
          },
          &stats);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  RecordProperty("runs", stats.runs);
  EXPECT_GT(stats.errors, stats.runs / 4);
  EXPECT_GT(stats.ok, 0);
  EXPECT_LT(seconds, 30.0);
}

TEST(CheckpointFuzz, MutatedFixtureFilesNeverCrash) {
  L2M_REQUIRE_SHARED(shared);
  const std::string fixtures = shared + "/fixtures/checkpoint_formats/";
  const std::vector<std::string> files = {"ordered_dict.pth",
                                          "ordered_dict_fp16.pth",
                                          "ordered_dict_legacy.pth",
                                          "views.pth",
                                          "lightning.ckpt",
                                          "wrapped_module.pth",
                                          "torch2x/ordered_dict.pth",
                                          "torch2x/ordered_dict_legacy.pth",
                                          "torch2x/views.pth",
                                          "torch2x/lightning.ckpt",
                                          "torch2x/wrapped_module.pth"};
  const auto start = std::chrono::steady_clock::now();
  std::mt19937 rng(42);
  FuzzStats stats;
  for (const std::string& file : files) {
    const std::string bytes = ReadFile(fixtures + file);
    ASSERT_FALSE(bytes.empty()) << file;
    for (int i = 0; i < 250; ++i) {
      const std::string m = Mutate(bytes, &rng);
      FuzzOne([&] { ReadCheckpointFromMemory(m, file); }, &stats);
    }
    // Every truncation of the small legacy file, and a sweep of the zip.
    if (file == "ordered_dict_legacy.pth") {
      for (size_t n = 0; n < bytes.size(); n += 7) {
        FuzzOne([&] { ReadCheckpointFromMemory(bytes.substr(0, n), file); },
                &stats);
      }
    }
  }
  // The real data.pkl of a fixture, mutated, with the real storages.
  const std::string zip = ReadFile(fixtures + "lightning.ckpt");
  caffe2::serialize::PyTorchStreamReader reader(fixtures + "lightning.ckpt");
  auto [pkl_ptr, pkl_size] = reader.getRecord("data.pkl");
  const std::string pkl(static_cast<const char*>(pkl_ptr.get()), pkl_size);
  const auto loader = [&](const StorageRecord& r) {
    const std::string name = "data/" + r.key;
    if (!reader.hasRecord(name)) throw std::runtime_error("missing");
    auto [ptr, size] = reader.getRecord(name);
    if (size != static_cast<size_t>(r.numel) * c10::elementSize(r.dtype)) {
      throw std::runtime_error("size");
    }
    at::Tensor t = at::empty({static_cast<int64_t>(size)},
                             at::TensorOptions().dtype(at::kByte));
    std::memcpy(t.data_ptr(), ptr.get(), size);
    return t;
  };
  for (int i = 0; i < 1000; ++i) {
    const std::string m = Mutate(pkl, &rng);
    FuzzOne(
        [&] {
          const PickleTree tree = ParsePickle(m.data(), m.size());
          StateDictFromPickle(tree, loader);
        },
        &stats);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  RecordProperty("runs", stats.runs);
  EXPECT_GT(stats.errors, 0);
  EXPECT_GT(stats.ok, 0);
  EXPECT_LT(seconds, 60.0);
}

}  // namespace
}  // namespace l2m
