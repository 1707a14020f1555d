#include "l2m_core/weights/strict_load.h"

#include "l2m_core/weights/checkpoint.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace l2m {
namespace {

// The fixtures' tiny module: conv Conv2d(3,4,3), bn BatchNorm2d(4),
// fc Linear(4,2); `width` changes the architecture.
struct TinyImpl : torch::nn::Module {
  explicit TinyImpl(int64_t width = 4, bool extra = false)
      : conv(register_module("conv", torch::nn::Conv2d(3, width, 3))),
        bn(register_module("bn", torch::nn::BatchNorm2d(width))),
        fc(register_module("fc", torch::nn::Linear(width, 2))) {
    if (extra) register_module("head", torch::nn::Linear(2, 2));
  }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
  torch::nn::Linear fc;
};

StateDict TinyStateDict() {
  torch::manual_seed(7);
  TinyImpl source;
  StateDict sd;
  for (const auto& p : source.named_parameters()) {
    sd.tensors.emplace_back(p.key(), p.value().detach().clone());
  }
  for (const auto& b : source.named_buffers()) {
    sd.tensors.emplace_back(b.key(), b.value().clone());
  }
  return sd;
}

TEST(StrictLoad, LoadsAllTensors) {
  const StateDict sd = TinyStateDict();
  TinyImpl target;
  const StrictLoadReport report = LoadStateDictStrict(target, sd, "tiny");
  EXPECT_EQ(report.loaded, sd.size());
  EXPECT_EQ(report.converted, 0u);
  EXPECT_TRUE(torch::equal(target.conv->weight, *sd.Find("conv.weight")));
  EXPECT_TRUE(torch::equal(target.bn->running_var, *sd.Find("bn.running_var")));
}

TEST(StrictLoad, ConvertsHalfToFloat) {
  StateDict sd = TinyStateDict();
  for (auto& [name, t] : sd.tensors) {
    if (t.is_floating_point()) t = t.to(torch::kHalf);
  }
  TinyImpl target;
  const StrictLoadReport report = LoadStateDictStrict(target, sd, "tiny16");
  EXPECT_EQ(report.converted, sd.size() - 1);  // All but num_batches_tracked.
  EXPECT_EQ(target.fc->weight.scalar_type(), torch::kFloat);
  EXPECT_TRUE(
      torch::equal(target.fc->weight, sd.Find("fc.weight")->to(torch::kFloat)));

  StrictLoadOptions no_convert;
  no_convert.convert_float_dtypes = false;
  TinyImpl other;
  try {
    LoadStateDictStrict(other, sd, "tiny16", no_convert);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "fc.weight: module has float32, checkpoint has float16"),
              std::string::npos)
        << e.what();
  }
}

TEST(StrictLoad, WrongArchitectureListsEverythingAndCopiesNothing) {
  StateDict sd = TinyStateDict();
  sd.tensors.emplace_back("stray.weight", torch::zeros({1}));
  sd.tensors.emplace_back("fc.bias_typo", torch::zeros({2}));
  TinyImpl target(/*width=*/8, /*extra=*/true);
  const torch::Tensor before = target.conv->weight.clone();
  try {
    LoadStateDictStrict(target, sd, "wrong.pth");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    for (const char* part :
         {"wrong.pth",
          "does not match the architecture",
          "missing (2)",
          "head.weight",
          "head.bias",
          "unexpected (2)",
          "stray.weight",
          "fc.bias_typo",
          "shape mismatch (7)",
          "conv.weight: expected [8, 3, 3, 3], got [4, 3, 3, 3]",
          "fc.weight: expected [2, 8], got [2, 4]",
          "bn.running_mean"}) {
      EXPECT_NE(msg.find(part), std::string::npos)
          << "lacks '" << part << "':\n"
          << msg;
    }
  }
  EXPECT_TRUE(torch::equal(target.conv->weight, before));
}

TEST(StrictLoad, IntegerFloatMismatchIsAnError) {
  StateDict sd = TinyStateDict();
  for (auto& [name, t] : sd.tensors) {
    if (name == "bn.num_batches_tracked") t = t.to(torch::kFloat);
  }
  TinyImpl target;
  try {
    LoadStateDictStrict(target, sd, "x");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bn.num_batches_tracked: module has "
                                         "int64, checkpoint has float32"),
              std::string::npos)
        << e.what();
  }
}

TEST(StrictLoad, FixtureCheckpointsIntoTinyModule) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/checkpoint_formats/";
  for (const char* file : {"ordered_dict.pth",
                           "ordered_dict_fp16.pth",
                           "ordered_dict_legacy.pth",
                           "lightning.ckpt",
                           "wrapped_module.pth",
                           "torch2x/lightning.ckpt"}) {
    SCOPED_TRACE(file);
    const StateDict sd = ReadCheckpoint(dir + file);
    TinyImpl target;
    EXPECT_EQ(LoadStateDictStrict(target, sd, dir + file).loaded, 9u);
    EXPECT_EQ(target.bn->num_batches_tracked.item<int64_t>(), 7);
  }
  // Wrong architecture from a real file.
  const StateDict sd = ReadCheckpoint(dir + "ordered_dict.pth");
  TinyImpl wide(8);
  try {
    LoadStateDictStrict(wide, sd, dir + "ordered_dict.pth");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ordered_dict.pth"),
              std::string::npos);
    EXPECT_NE(std::string(e.what()).find("7 mis-shaped"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace l2m
