#include "colmap_plugin/retrieval.h"

#include "colmap_plugin/vit_descriptor.h"
#include "l2m_core/util/progress.h"
#include "matcher_adapters/image_io.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

namespace l2m {
namespace {

// Orientation histograms (8 unsigned orientations) of a size x size
// grey image on a 4x4 grid: 128 values, magnitude weighted.
void GradientEnergy(const cv::Mat& gray, int size, std::vector<float>* out) {
  cv::Mat small;
  cv::resize(gray, small, cv::Size(size, size), 0, 0, cv::INTER_AREA);
  small.convertTo(small, CV_32F, 1.0 / 255.0);
  cv::Mat gx, gy;
  cv::Sobel(small, gx, CV_32F, 1, 0, 3);
  cv::Sobel(small, gy, CV_32F, 0, 1, 3);
  constexpr int kGrid = 4, kBins = 8;
  std::vector<float> hist(kGrid * kGrid * kBins, 0.f);
  for (int y = 0; y < size; ++y) {
    const float* px = gx.ptr<float>(y);
    const float* py = gy.ptr<float>(y);
    const int cy = y * kGrid / size;
    for (int x = 0; x < size; ++x) {
      const float mag = std::sqrt(px[x] * px[x] + py[x] * py[x]);
      float angle = std::atan2(py[x], px[x]);  // [-pi, pi]
      if (angle < 0) angle += static_cast<float>(CV_PI);
      int bin = static_cast<int>(angle / CV_PI * kBins);
      bin = std::min(std::max(bin, 0), kBins - 1);
      const int cx = x * kGrid / size;
      hist[(cy * kGrid + cx) * kBins + bin] += mag;
    }
  }
  double norm = 0;
  for (float v : hist) norm += v;
  for (float v : hist)
    out->push_back(static_cast<float>(std::sqrt(v / std::max(norm, 1e-9))));
}

cv::Mat GistDescriptor(const cv::Mat& bgr) {
  cv::Mat gray;
  cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
  std::vector<float> d;
  GradientEnergy(gray, 128, &d);
  GradientEnergy(gray, 64, &d);
  // Coarse colour layout (Lab, 4x4), half the weight of the texture part.
  cv::Mat lab, tiny;
  cv::cvtColor(bgr, lab, cv::COLOR_BGR2Lab);
  cv::resize(lab, tiny, cv::Size(4, 4), 0, 0, cv::INTER_AREA);
  std::vector<float> colour;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c)
        colour.push_back((tiny.at<cv::Vec3b>(y, x)[c] - 128.f) / 128.f);
  double cn = 0;
  for (float v : colour) cn += v * v;
  cn = std::sqrt(std::max(cn, 1e-12));
  for (float v : colour) d.push_back(static_cast<float>(0.5 * v / cn));
  cv::Mat row(1, static_cast<int>(d.size()), CV_32F);
  std::copy(d.begin(), d.end(), row.ptr<float>());
  cv::normalize(row, row);
  return row;
}

struct Candidate {
  float score;
  int index;
};
// "a is worse than b": lower score, or equal score and larger index.
bool Worse(const Candidate& a, const Candidate& b) {
  return a.score < b.score || (a.score == b.score && a.index > b.index);
}
// Heap with the worst candidate on top.
bool HeapLess(const Candidate& a, const Candidate& b) { return Worse(b, a); }

}  // namespace

bool RetrievalOptions::Check(std::string* error) const {
  if (num_neighbors < 1) {
    *error = "Retrieval: num_neighbors (K) must be >= 1";
    return false;
  }
  if (block_rows < 1 || block_cols < 1) {
    *error = "Retrieval: block sizes must be >= 1";
    return false;
  }
  if (sequential_overlap < 0) {
    *error = "Retrieval: sequential_overlap must be >= 0";
    return false;
  }
  const auto known = KnownGlobalDescriptors();
  if (std::find(known.begin(), known.end(), descriptor) == known.end()) {
    *error = "Retrieval: unknown descriptor '" + descriptor +
             "' (known: gist, dinov2_gem)";
    return false;
  }
  return true;
}

std::vector<std::string> KnownGlobalDescriptors() {
  return {"gist", "dinov2_gem"};
}

cv::Mat ComputeGlobalDescriptor(const cv::Mat& bgr,
                                const std::string& descriptor) {
  if (bgr.empty() || bgr.type() != CV_8UC3)
    throw std::invalid_argument("global descriptor: expected 8-bit BGR");
  if (descriptor == "gist") return GistDescriptor(bgr);
  throw std::invalid_argument("global descriptor '" + descriptor +
                              "' needs a model: use RetrievalPairs");
}

std::vector<std::vector<int>> TopKNeighbors(const cv::Mat& descriptors,
                                            int k,
                                            int block_rows,
                                            int block_cols) {
  CV_Assert(descriptors.type() == CV_32F);
  const int n = descriptors.rows;
  std::vector<std::vector<int>> result(n);
  k = std::min(k, std::max(n - 1, 0));
  if (k <= 0) return result;
  cv::Mat sims;
  for (int r0 = 0; r0 < n; r0 += block_rows) {
    const int r1 = std::min(n, r0 + block_rows);
    std::vector<std::vector<Candidate>> heaps(r1 - r0);
    for (auto& h : heaps) h.reserve(k + 1);
    for (int c0 = 0; c0 < n; c0 += block_cols) {
      const int c1 = std::min(n, c0 + block_cols);
      cv::gemm(descriptors.rowRange(r0, r1),
               descriptors.rowRange(c0, c1),
               1.0,
               cv::noArray(),
               0.0,
               sims,
               cv::GEMM_2_T);
      for (int i = r0; i < r1; ++i) {
        auto& heap = heaps[i - r0];
        const float* s = sims.ptr<float>(i - r0);
        for (int j = c0; j < c1; ++j) {
          if (j == i) continue;
          const Candidate c{s[j - c0], j};
          if (static_cast<int>(heap.size()) < k) {
            heap.push_back(c);
            std::push_heap(heap.begin(), heap.end(), HeapLess);
          } else if (Worse(heap.front(), c)) {
            std::pop_heap(heap.begin(), heap.end(), HeapLess);
            heap.back() = c;
            std::push_heap(heap.begin(), heap.end(), HeapLess);
          }
        }
      }
    }
    for (int i = r0; i < r1; ++i) {
      auto& heap = heaps[i - r0];
      std::sort(heap.begin(), heap.end(), [](const auto& a, const auto& b) {
        return Worse(b, a);
      });
      for (const auto& c : heap) result[i].push_back(c.index);
    }
  }
  return result;
}

std::vector<ImagePair> RetrievalPairs(const std::string& image_dir,
                                      const std::vector<DbImage>& images,
                                      const RetrievalOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  const int n = static_cast<int>(images.size());
  cv::Mat descriptors;
  std::unique_ptr<VitGemDescriptor> vit;
  if (options.descriptor == "dinov2_gem") {
    VitDescriptorOptions vit_options;
    vit_options.weights = options.weights;
    vit_options.device = options.device;
    vit_options.input_size = options.input_size;
    vit = std::make_unique<VitGemDescriptor>(vit_options);
  }
  Progress progress("retrieval: descriptors", n);
  for (int i = 0; i < n; ++i) {
    const MatcherImage im =
        LoadMatcherImage(images[i].image_id, image_dir + "/" + images[i].name);
    const cv::Mat d = vit ? vit->Compute(im.bgr)
                          : ComputeGlobalDescriptor(im.bgr, options.descriptor);
    if (descriptors.empty()) descriptors.create(n, d.cols, CV_32F);
    d.copyTo(descriptors.row(i));
    progress.Add();
  }
  progress.Finish();
  // Centre on the collection's mean: every image shares a lot of generic
  // gradient/colour energy, which hides the differences that rank neighbours.
  if (n > 2) {
    cv::Mat mean;
    cv::reduce(descriptors, mean, 0, cv::REDUCE_AVG);
    for (int i = 0; i < n; ++i) {
      cv::Mat row = descriptors.row(i);
      row -= mean;
      cv::normalize(row, row);
    }
  }
  const auto neighbors = TopKNeighbors(descriptors,
                                       options.num_neighbors,
                                       options.block_rows,
                                       options.block_cols);
  std::vector<ImagePair> pairs;
  for (int i = 0; i < n; ++i)
    for (int j : neighbors[i])
      pairs.emplace_back(images[i].image_id, images[j].image_id);
  if (options.sequential_overlap > 0) {
    const auto seq = SequentialPairs(images, options.sequential_overlap);
    pairs.insert(pairs.end(), seq.begin(), seq.end());
  }
  NormalizePairs(&pairs);
  return pairs;
}

}  // namespace l2m
