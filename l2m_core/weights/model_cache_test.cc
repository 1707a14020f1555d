#include "l2m_core/weights/model_cache.h"

#include "l2m_core/weights/safetensors.h"
#include "tests/test_utils.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace l2m {
namespace {

TEST(ModelCache, DefaultDirAndNames) {
  ::setenv("L2M_MODEL_DIR", "/some/where", 1);
  EXPECT_EQ(DefaultModelCacheDir(), "/some/where");
  EXPECT_EQ(CachedModelPath("roma_outdoor"),
            "/some/where/roma_outdoor.safetensors");
  ::unsetenv("L2M_MODEL_DIR");
  const char* home = std::getenv("HOME");
  if (home != nullptr) {
    EXPECT_EQ(DefaultModelCacheDir(), std::string(home) + "/.cache/l2m/models");
  }
  EXPECT_NO_THROW(ValidateModelName("l2m++_560x560.v1-b"));
  EXPECT_THROW(ValidateModelName(""), std::invalid_argument);
  EXPECT_THROW(ValidateModelName("../x"), std::invalid_argument);
  EXPECT_THROW(ValidateModelName(".hidden"), std::invalid_argument);
  EXPECT_THROW(ValidateModelName("a b"), std::invalid_argument);
}

TEST(ModelCache, ImportAndList) {
  test::TempDir dir;
  const std::string cache = dir.File("cache/models");
  // A source checkpoint in safetensors form, with a DataParallel prefix.
  const std::string source = dir.File("src.safetensors");
  WriteSafetensors(source,
                   {{"module.w", at::arange(6.0).view({2, 3})},
                    {"module.h", at::ones({4}, at::kHalf)}});
  const ImportSummary s = ImportCheckpointToCache(source, "net", cache);
  EXPECT_EQ(s.output_path, cache + "/net.safetensors");
  EXPECT_EQ(s.num_tensors, 2u);
  EXPECT_EQ(s.num_elements, 10);
  EXPECT_EQ(s.dtype_counts.at("float32"), 1u);
  EXPECT_EQ(s.dtype_counts.at("float16"), 1u);
  EXPECT_EQ(s.stripped_prefixes, std::vector<std::string>{"module."});
  EXPECT_GT(s.file_bytes, 0u);
  EXPECT_NE(s.ToString().find("tensors: 2, parameters: 10"), std::string::npos)
      << s.ToString();

  const StateDict cached = ReadSafetensors(s.output_path);
  ASSERT_EQ(cached.size(), 2u);
  EXPECT_EQ(cached.tensors[0].first, "w");
  EXPECT_EQ(cached.metadata.at("l2m.source"), "src.safetensors");
  EXPECT_EQ(cached.metadata.at("l2m.stripped_prefixes"), "module.");

  // A second import of the same name needs overwrite.
  EXPECT_THROW(ImportCheckpointToCache(source, "net", cache),
               std::runtime_error);
  ImportOptions overwrite;
  overwrite.overwrite = true;
  EXPECT_NO_THROW(ImportCheckpointToCache(source, "net", cache, overwrite));

  // A broken file is listed with its error; temporaries are ignored.
  {
    FILE* f = std::fopen((cache + "/broken.safetensors").c_str(), "wb");
    std::fputs("nonsense", f);
    std::fclose(f);
    f = std::fopen((cache + "/x.safetensors.tmp.1.2").c_str(), "wb");
    std::fclose(f);
  }
  const auto models = ListCachedModels(cache);
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].name, "broken");
  EXPECT_FALSE(models[0].error.empty());
  EXPECT_EQ(models[1].name, "net");
  EXPECT_TRUE(models[1].error.empty());
  EXPECT_EQ(models[1].num_tensors, 2u);
  EXPECT_EQ(models[1].num_elements, 10);
  EXPECT_EQ(models[1].metadata.at("l2m.source_format"), "safetensors");

  EXPECT_TRUE(ListCachedModels(dir.File("absent")).empty());

  // By name from the cache, by path, and a clear error otherwise.
  const StateDict by_name = ReadModelWeights("net", cache);
  EXPECT_EQ(by_name.format, "safetensors");
  EXPECT_EQ(by_name.tensors[0].first, "w");
  EXPECT_EQ(ReadModelWeights(source, cache).tensors[0].first, "w");
  try {
    ReadModelWeights("missing_model", cache);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cached: broken, net"),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelCache, ImportFixtureLightningCheckpoint) {
  L2M_REQUIRE_SHARED(shared);
  test::TempDir dir;
  const std::string ckpt =
      shared + "/fixtures/checkpoint_formats/lightning.ckpt";
  const ImportSummary s = ImportCheckpointToCache(ckpt, "gim_tiny", dir.path());
  EXPECT_EQ(s.source_format, "zip");
  EXPECT_EQ(s.num_tensors, 9u);
  EXPECT_EQ(s.num_elements, 108 + 4 * 5 + 1 + 8 + 2);
  EXPECT_EQ(s.unwrapped, std::vector<std::string>{"state_dict"});
  EXPECT_EQ(s.stripped_prefixes, std::vector<std::string>{"model."});
  const StateDict a = ReadCheckpoint(ckpt);
  const StateDict b = ReadSafetensors(s.output_path);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_TRUE(at::equal(a.tensors[i].second, b.tensors[i].second));
  }
}

}  // namespace
}  // namespace l2m
