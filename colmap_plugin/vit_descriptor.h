#pragma once

// A global image descriptor from the matcher's own coarse encoder: DINOv2
// patch tokens, GeM-pooled (generalised mean, p = 3) and L2-normalised, for
// retrieval pairs (`l2m pairs --retrieval K --Retrieval.descriptor
// dinov2_gem --Retrieval.weights DINO`).

#include <opencv2/core.hpp>

#include <memory>
#include <string>

namespace l2m {

struct VitDescriptorOptions {
  // DINOv2 weights: checkpoint file or cached model name. The ViT's width,
  // depth and position grid are read from the weights (ViT-L/14 as L2M and
  // RoMa use, ViT-B/14, ...); every key must fit.
  std::string weights;
  std::string device = "cpu";
  // Square input (multiple of 14), PIL bicubic + ImageNet normalisation.
  int input_size = 448;
  double gem_p = 3.0;
  int num_threads = 0;

  void Check() const;
};

class VitGemDescriptor {
 public:
  explicit VitGemDescriptor(const VitDescriptorOptions& options);
  ~VitGemDescriptor();

  // 1 x C CV_32F, L2-normalised, of an 8-bit BGR image.
  cv::Mat Compute(const cv::Mat& bgr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace l2m
