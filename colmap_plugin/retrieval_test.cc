#include "colmap_plugin/retrieval.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <filesystem>
#include <numeric>

namespace l2m {
namespace {

TEST(Retrieval, BlockwiseTopKIsExact) {
  cv::Mat d(57, 16, CV_32F);
  cv::RNG rng(5);
  rng.fill(d, cv::RNG::NORMAL, 0, 1);
  for (int i = 0; i < d.rows; ++i) cv::normalize(d.row(i), d.row(i));
  d.row(3).copyTo(d.row(40));  // A tie: equal scores, smaller index first.
  const int k = 6;
  const auto whole = TopKNeighbors(d, k, 1000, 1000);
  for (const auto& [rows, cols] :
       std::vector<std::pair<int, int>>{{1, 1}, {4, 7}, {57, 3}, {10, 100}}) {
    EXPECT_EQ(TopKNeighbors(d, k, rows, cols), whole)
        << rows << " x " << cols << " blocks";
  }
  // Against a brute-force sort.
  const cv::Mat sims = d * d.t();
  for (int i = 0; i < d.rows; ++i) {
    std::vector<int> order(d.rows);
    std::iota(order.begin(), order.end(), 0);
    order.erase(order.begin() + i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return sims.at<float>(i, a) > sims.at<float>(i, b);
    });
    order.resize(k);
    EXPECT_EQ(whole[i], order) << "row " << i;
  }
  EXPECT_EQ(whole[3][0], 40);
  EXPECT_EQ(whole[40][0], 3);
  // K larger than N - 1.
  EXPECT_EQ(TopKNeighbors(d.rowRange(0, 3), 10, 2, 2)[0].size(), 2u);
}

TEST(Retrieval, GistFindsOverlappingViews) {
  // Three overlapping windows of one texture and three of another: each
  // image's nearest neighbours are the windows of its own texture.
  test::TempDir dir;
  std::vector<DbImage> images;
  for (int t = 0; t < 2; ++t) {
    cv::Mat canvas(300, 500, CV_8UC3);
    cv::RNG rng(11 + t);
    rng.fill(canvas, cv::RNG::UNIFORM, 0, 255);
    cv::GaussianBlur(canvas, canvas, cv::Size(0, 0), t == 0 ? 1.5 : 6.0);
    if (t == 1) canvas += cv::Scalar(60, 0, 0);
    for (int w = 0; w < 3; ++w) {
      const std::string name =
          "t" + std::to_string(t) + "_" + std::to_string(w) + ".png";
      cv::imwrite(dir.File(name), canvas(cv::Rect(40 * w, 10, 400, 280)));
      images.push_back({static_cast<image_t>(images.size() + 1), name, 1});
    }
  }
  RetrievalOptions options;
  options.num_neighbors = 2;
  const auto pairs = RetrievalPairs(dir.path(), images, options);
  const std::vector<ImagePair> expected = {
      {1, 2}, {1, 3}, {2, 3}, {4, 5}, {4, 6}, {5, 6}};
  EXPECT_EQ(pairs, expected);
  // Deterministic descriptor.
  const cv::Mat im = cv::imread(dir.File(images[0].name));
  EXPECT_EQ(cv::norm(ComputeGlobalDescriptor(im, "gist"),
                     ComputeGlobalDescriptor(im, "gist")),
            0.0);
  std::string error;
  options.descriptor = "netvlad";
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("netvlad"), std::string::npos);
}

}  // namespace
}  // namespace l2m
