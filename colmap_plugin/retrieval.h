#pragma once

// Retrieval pairs: a global descriptor per image, then each image with its K
// most similar images (exact cosine top-K, computed block by block so that
// memory is O(N * D + block_rows * block_cols), never an N x N matrix).
//
// Descriptors:
//  - "gist" (default; no weights): multi-scale oriented-gradient energy on
//    a 4x4 grid (8 orientations, 2 scales) + a 4x4 Lab colour layout,
//    square-rooted and L2-normalised (a GIST-like classical descriptor).
//  - "dinov2_gem": the matcher's DINOv2 encoder, patch tokens GeM-pooled
//    (vit_descriptor.h); needs `weights`.

#include "colmap_plugin/database.h"
#include "colmap_plugin/pairs.h"

#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace l2m {

struct RetrievalOptions {
  // Neighbours per image (K); pairs are the union over images, so an image
  // may end up in more than K pairs.
  int num_neighbors = 20;
  std::string descriptor = "gist";
  // dinov2_gem: DINOv2 weights (file or cached name), device, input size.
  std::string weights;
  std::string device = "cpu";
  int input_size = 448;
  // Blocks of the similarity computation.
  int block_rows = 256;
  int block_cols = 8192;
  // Also pair each image with the next `sequential_overlap` ones by name
  // (0 = off): retrieval + sequential, as COLMAP's vocab-tree + sequential.
  int sequential_overlap = 0;

  bool Check(std::string* error) const;
};

// The descriptors RetrievalPairs knows.
std::vector<std::string> KnownGlobalDescriptors();

// Global descriptor (L2-normalised row vector, CV_32F 1 x D) of one 8-bit
// BGR image.
cv::Mat ComputeGlobalDescriptor(const cv::Mat& bgr,
                                const std::string& descriptor);

// Exact top-K neighbours of each row of `descriptors` (N x D, CV_32F, rows
// L2-normalised) by dot product, excluding itself. Ties: smaller index
// first. Returns N lists of at most K indices, best first.
std::vector<std::vector<int>> TopKNeighbors(const cv::Mat& descriptors,
                                            int k,
                                            int block_rows,
                                            int block_cols);

// Reads the images one at a time (image_dir + name), computes descriptors,
// and returns the normalised pair list.
std::vector<ImagePair> RetrievalPairs(const std::string& image_dir,
                                      const std::vector<DbImage>& images,
                                      const RetrievalOptions& options);

}  // namespace l2m
