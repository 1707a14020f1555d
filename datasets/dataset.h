#pragma once

// Benchmark pair lists with ground truth: SuperGlue `*_pairs_with_gt.txt`,
// LoFTR's ScanNet-1500 (test.npz + intrinsics.npz) and MegaDepth-1500
// (scene-info .npz), homography pairs (CMP "homogr" and Oxford H1toNp).
// Further formats (synth shards) plug in with RegisterDatasetReader().
//
// All geometry is stored in COLMAP pixels (top-left pixel centre (0.5, 0.5))
// except intrinsics K, which stay as the datasets give them: OpenCV pixels
// (0-based pixel centres) for the image size `K_size`.

#include <opencv2/core.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace l2m {

// Dense ground truth of a pair, for match precision (extension point: synth
// shards know depth + pose or flow for every pixel).
class DenseGroundTruth {
 public:
  virtual ~DenseGroundTruth() = default;
  // Where the point (x1, y1) of image 1 lies in image 2 (COLMAP pixels of
  // the original images); false where unknown (occluded, no depth, outside).
  virtual bool Transfer(double x1, double y1, double* x2, double* y2) const = 0;
};

enum class PairGeometry { kRelativePose, kHomography };

struct EvalPair {
  std::string name;  // Unique within the dataset.
  std::string image_path1;
  std::string image_path2;
  PairGeometry geometry = PairGeometry::kRelativePose;

  // kRelativePose: intrinsics valid for images of size K_size (empty = the
  // images as stored) and cam2_from_cam1.
  cv::Matx33d K1 = cv::Matx33d::eye();
  cv::Matx33d K2 = cv::Matx33d::eye();
  cv::Size K_size1;
  cv::Size K_size2;
  cv::Matx33d R = cv::Matx33d::eye();
  cv::Vec3d t = cv::Vec3d(0, 0, 0);

  // kHomography: image2_from_image1 in COLMAP pixels, and optional
  // hand-clicked GT correspondences (x1, y1, x2, y2).
  cv::Matx33d H = cv::Matx33d::eye();
  std::vector<cv::Vec4d> gt_points;

  // Optional; null unless the dataset has dense GT.
  std::shared_ptr<const DenseGroundTruth> dense_gt;
};

// Which rescaling the pose protocols apply (RoMa: long side 1200 outdoors,
// short side 480 indoors).
enum class SceneKind { kOutdoor, kIndoor, kPlanar };

struct PairDataset {
  std::string name;  // The benchmark name, e.g. "scannet1500".
  std::string root;
  SceneKind scene_kind = SceneKind::kOutdoor;
  std::vector<EvalPair> pairs;
  // What to download and where to put it, printed when images are missing.
  std::string download_hint;
};

// Throws std::runtime_error listing the first missing images, how many are
// missing, and the dataset's download hint.
void CheckDatasetImages(const PairDataset& dataset);

// ---- Readers ----------------------------------------------------------------

// SuperGlue format: `name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)` per line,
// images in `image_dir`. Non-zero EXIF rotations are rejected (unsupported).
std::vector<EvalPair> ReadSuperGluePairs(const std::string& pairs_path,
                                         const std::string& image_dir);

// A folder of CMP "homogr" pairs (`NAMEA.*`, `NAMEB.*`, `NAME_model.txt` with
// x_A ~ H x_B in 1-based pixels, optional `NAME_vpts.txt`), and/or Oxford
// sequences (`img1.*`, `imgN.*`, `H1toNp` text or OpenCV `H1toNp.xml` with
// matrix H13, x_N ~ H x_1 in 0-based pixels; graf1/graf3 as in opencv-doc).
// Searched in `root`, `root/pairs` and every sub-folder of `root`.
std::vector<EvalPair> ReadHomographyPairs(const std::string& root);

// LoFTR ScanNet-1500: `test.npz` (name [N,4] = scene, sub, frame0, frame1;
// rel_pose [N,3,4] = cam1_from_cam0) and `intrinsics.npz` (scene -> 3x3 for
// 640x480), images at `<scene>/color/<frame>.jpg` under `image_root`.
std::vector<EvalPair> ReadScanNet1500(const std::string& test_npz,
                                      const std::string& intrinsics_npz,
                                      const std::string& image_root);

// LoFTR MegaDepth-1500 scene-info files (image_paths, intrinsics, poses
// (cam_from_world 4x4), pair_infos ((idx0, idx1), overlap, ...)); image
// paths are relative to `image_root`.
std::vector<EvalPair> ReadMegaDepthSceneInfo(const std::string& npz_path,
                                             const std::string& image_root);

// ---- Benchmarks by name ---------------------------------------------------

using DatasetReader = std::function<PairDataset(const std::string& data_path)>;

// Extension point: adds (or replaces) a benchmark name for CreateDataset().
void RegisterDatasetReader(const std::string& name, DatasetReader reader);

// "scannet_pairs", "megadepth1500", "scannet1500", "homography" and any
// registered ones.
std::vector<std::string> KnownBenchmarks();

// Reads the benchmark's ground truth from data_path (layouts: see
// dataset.cc). Throws std::invalid_argument for an unknown benchmark and
// std::runtime_error naming what is missing, with download instructions.
PairDataset CreateDataset(const std::string& benchmark,
                          const std::string& data_path);

}  // namespace l2m
