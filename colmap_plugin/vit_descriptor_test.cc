// The DINOv2-GeM retrieval descriptor on a tiny random ViT: the plumbing
// (architecture read from the weights, strict load, pooling, normalisation)
// and clear errors. Its retrieval quality needs real weights, which these
// machines do not have.

#include "colmap_plugin/vit_descriptor.h"

#include "colmap_plugin/retrieval.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/weights/safetensors.h"
#include "matcher_adapters/test_images.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace l2m {
namespace {

std::string WriteTinyVit(const test::TempDir& dir, bool with_pos_embed = true) {
  torch::manual_seed(0);
  DinoConfig config;
  config.embed_dim = 64;
  config.depth = 2;
  config.num_heads = 1;
  config.img_size = 56;  // 4 x 4 position grid
  DinoVisionTransformer vit(config);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : vit->named_parameters()) {
    if (!with_pos_embed && item.key() == "pos_embed") continue;
    tensors.emplace_back(item.key(), item.value().detach().clone());
  }
  const std::string path = dir.File("tiny_vit.safetensors");
  WriteSafetensors(path, tensors, {});
  return path;
}

TEST(VitGemDescriptor, ReadsTheArchitectureFromTheWeights) {
  test::TempDir dir;
  VitDescriptorOptions options;
  options.weights = WriteTinyVit(dir);
  options.input_size = 112;
  options.num_threads = 2;
  VitGemDescriptor descriptor(options);
  const cv::Mat a = test::RandomTexture(160, 120, 1);
  const cv::Mat b = test::RandomTexture(160, 120, 2);
  const cv::Mat da = descriptor.Compute(a), da2 = descriptor.Compute(a);
  const cv::Mat db = descriptor.Compute(b);
  ASSERT_EQ(da.cols, 64);
  EXPECT_NEAR(cv::norm(da), 1.0, 1e-5);
  EXPECT_EQ(cv::norm(da - da2), 0.0);  // Deterministic.
  EXPECT_GT(cv::norm(da - db), 1e-4);  // Different images differ.
}

TEST(VitGemDescriptor, ClearErrors) {
  test::TempDir dir;
  VitDescriptorOptions options;
  EXPECT_THROW(VitGemDescriptor{options},
               std::invalid_argument);  // No weights.
  options.weights = WriteTinyVit(dir, /*with_pos_embed=*/false);
  try {
    VitGemDescriptor descriptor(options);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tiny_vit.safetensors"),
              std::string::npos)
        << e.what();
  }
  options.input_size = 100;
  EXPECT_THROW(options.Check(), std::invalid_argument);
  RetrievalOptions retrieval;
  retrieval.descriptor = "dinov2_gem";
  std::string error;
  EXPECT_TRUE(retrieval.Check(&error)) << error;
  retrieval.descriptor = "nope";
  EXPECT_FALSE(retrieval.Check(&error));
}

}  // namespace
}  // namespace l2m
