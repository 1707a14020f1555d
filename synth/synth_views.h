#pragma once

// The `l2m synth views` pipeline: photos (+ disparities) -> N novel views per
// photo with exact dense GT, written in the reference's folder layout and as
// training shards. See synth/README.md for the formats.

#include "synth/lifting.h"
#include "synth/novel_view.h"
#include "synth/relight.h"
#include "synth/shard.h"
#include "synth/sky.h"

#include <Eigen/Core>
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace l2m {

enum class RelightMode { kOff, kConsistent, kIndependent };
RelightMode ParseRelightMode(const std::string& text);

struct ViewsOptions {
  int num_views = 2;  // Per photo; names <stem>_<k> never collide.
  uint64_t seed = 0;
  bool write_folders = true;  // image1/ image2/ depth1/ ... (.npy, PNG).
  bool write_shards = true;   // shards/shard_NNNNN.l2ms.
  int photos_per_shard = 16;  // Also the unit of resume.
  int num_debug = 20;         // Photos with debug pictures (-1 = all).
  int debug_matches = 30;
  double consistency_threshold = 0.05;  // GT depth test (RoMa: 0.05).
  std::string relight = "off";          // off | consistent | independent.
  bool sky = false;                     // Mask sky before lifting.
  LiftingOptions lifting;
  PoseRangeOptions poses;
  NovelViewOptions view;
  RelightOptions relight_options;
  SkyOptions sky_options;

  bool Check(std::string* error) const;
};

// A source photo cropped to size x size with its normalised disparity.
struct SourcePhoto {
  cv::Mat image;      // CV_8UC3.
  cv::Mat disparity;  // CV_32F normalised, NaN = unknown.
  bool procedural = false;
};

// Reads an image and (if `disparity_path` is not empty) its disparity,
// checking that both decode and have the same size (errors name the files);
// without one, ProceduralDisparity(seed) stands in.
SourcePhoto LoadSourcePhoto(const std::string& image_path,
                            const std::string& disparity_path,
                            const LiftingOptions& options,
                            uint64_t seed);

// The disparity file for `stem` in `dir` (.npy, .npz, .png, .tif/.tiff,
// .pfm is not supported); throws listing the candidates when none exists.
std::string FindDisparityFile(const std::string& dir, const std::string& stem);

struct SynthPair {
  std::string name;
  std::string source;
  int view_index = 0;
  cv::Mat image1, image2;  // CV_8UC3 (image2 inpainted).
  cv::Mat depth1, depth2;  // CV_32F, 0 = unknown/hole/sky.
  cv::Mat hole_mask2;      // CV_8U, 255 = hole in view 2.
  PinholeCamera camera1, camera2;
  Eigen::Matrix4d cam2_from_cam1 = Eigen::Matrix4d::Identity();
  GtWarp warp12, warp21;  // Explicit dense GT (COLMAP pixels).
  int sky_pixels = 0;
};

// Renders the pairs of one photo (view k uses SeedFor(seed, stem, k)).
std::vector<SynthPair> MakePairs(const SourcePhoto& photo,
                                 const std::string& stem,
                                 const ViewsOptions& options);

// Reference layout + explicit GT under `output` (atomic per file); meta/ is
// written last, so its presence marks a complete pair.
void WritePairFolders(const std::string& output,
                      const SynthPair& pair,
                      bool debug,
                      int debug_matches);
ShardRecord PairToShardRecord(const SynthPair& pair);

// Runs the whole command; returns the number of pairs written.
int RunViewsPipeline(const std::string& image_dir,
                     const std::string& disparity_dir,
                     const std::string& output,
                     const ViewsOptions& options);

// Image files of a folder (sorted; .jpg .jpeg .png .bmp .tif .tiff .ppm, any
// case).
std::vector<std::string> ListImages(const std::string& dir);

}  // namespace l2m

namespace l2m {

// Names of the complete pairs (meta/<name>.json present) of an output folder.
std::vector<std::string> ListPairs(const std::string& dir);
// Reads a pair back from the folder layout (warps recomputed by the caller if
// needed); errors name the file.
SynthPair ReadPairFolders(const std::string& dir, const std::string& name);

}  // namespace l2m
