#pragma once

// Training pairs generated on the fly from single photos (L2M stage 2.1-2.2
// without files in between), for the trainer's PairSource: each pair is a
// photo crop (view A) and a novel view of it rendered from a procedural
// depth (view B), with exact depths, intrinsics and relative pose, so that
// RoMa's get_gt_warp (l2m_core/geometry/gt_warp.h) gives the dense GT.
//
// No OpenCV: it builds with -DL2M_CORE_ONLY=ON (libjpeg/libpng decode, the
// PIL-style resize of l2m_core/image, synth/'s rasteriser). See
// synth/README.md ("On-the-fly training pairs") for what it does and does
// not do.

#include "l2m_core/image/image_codec.h"
#include "l2m_core/train/pair_source.h"
#include "synth/camera.h"
#include "synth/lighting.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace l2m {

struct PhotoPairOptions {
  // Photos (JPEG or PNG, by content): the union of `photos` (paths),
  // `image_dir` (every *.jpg/*.jpeg/*.png below it, recursively) and
  // `image_list` (a text file, one path per line, relative paths taken from
  // the list's folder; empty lines and lines starting with '#' skipped).
  // Photo names (for the split and the seeds) are the paths relative to
  // image_dir / the list's folder, else the path as given; the list is
  // sorted by name, so it does not depend on the file system's order.
  std::vector<std::string> photos;
  std::string image_dir;
  std::string image_list;

  // Output size of both views (short side resized to cover, centre crop).
  int height = 448;
  int width = 448;
  // Focal length f = U[min, max) * width for both views (get_data.py).
  double min_focal_fraction = 0.45;
  double max_focal_fraction = 0.75;
  // Random relative pose (get_rand_ext's ranges); `motion_scale` multiplies
  // every translation range (1 = the reference's; depth is in [~1, 1000]
  // with most of the scene at 1-10 units).
  PoseRangeOptions pose;
  double motion_scale = 1;
  // Reference discontinuity test: a vertex is kept iff
  // exp(-alpha_scale * |Sobel(disp)|) > alpha_threshold.
  double alpha_scale = 10;
  double alpha_threshold = 0.1;

  // Consistent relighting of both views (the same lights on the same
  // surface: Lambertian shading is view-independent, so the GT stays exact).
  bool relight = true;
  // Probability that a pair is relit at all (the rest keep the photo's light).
  double relight_probability = 0.5;
  RelightOptions relight_options;

  // Independent photometric jitter per view (applied after rendering).
  bool photometric_jitter = true;
  double max_brightness = 0.2;   // Gain in [1 - b, 1 + b].
  double max_contrast = 0.2;     // Around the mean, factor in [1 - c, 1 + c].
  double max_gamma = 0.2;        // Exponent in [1/(1 + g), 1 + g].
  double max_color_gain = 0.05;  // Per channel gain in [1 - g, 1 + g].
  // Holes of view B are filled with a push-pull (hierarchical average) of the
  // rendered colours plus Gaussian grain of this standard deviation (in
  // [0, 1] units), so that "black" or "perfectly smooth" does not mean "hole".
  double hole_noise = 0.02;

  // Swap A and B (with the inverse pose) with this probability, so that both
  // the real photo and the rendered view appear as the query.
  double swap_probability = 0.5;

  uint64_t seed = 0;
  // Held-out photos: a photo is in "val" iff a stable hash of (its name,
  // split_seed) falls below validation_fraction. Independent of `seed`, of
  // the other photos and of their order, so adding photos never moves one
  // from train to val.
  double validation_fraction = 0;
  std::string split = "train";  // "train", "val" or "all".
  uint64_t split_seed = 0;

  // Threads of the rasteriser inside one Get() (1: the trainer's loader
  // already runs several Get() at once).
  int num_threads = 1;

  bool Check(std::string* error) const;
};

class PhotoPairSource : public PairSource {
 public:
  // Lists the photos (not decoded yet; missing files are reported by Get()).
  // Throws std::invalid_argument when Check() fails, std::runtime_error when
  // the folder or the list cannot be read or the split has no photo.
  explicit PhotoPairSource(const PhotoPairOptions& options);

  // One epoch = one pair per photo of the split.
  int64_t Size() const override;
  // Pair `index` from photo PhotoIndex(index). Deterministic in
  // (seed, photo name, index), thread-safe. Throws std::runtime_error naming
  // the photo when it is missing or corrupt.
  TrainingPair Get(int64_t index) const override;

  // Photo of `index`: a permutation of the photos per epoch
  // (index / Size()), seeded by the seed and the epoch.
  int64_t PhotoIndex(int64_t index) const;

  const std::vector<std::string>& photo_names() const { return names_; }
  const std::vector<std::string>& photo_paths() const { return paths_; }
  const PhotoPairOptions& options() const { return options_; }

  // The split's hash test on its own (for tools listing the split).
  static bool IsValidationPhoto(const std::string& name,
                                double validation_fraction,
                                uint64_t split_seed);

 private:
  PhotoPairOptions options_;
  std::vector<std::string> names_;
  std::vector<std::string> paths_;
  // The last epoch's permutation (Get() is called epoch after epoch).
  mutable std::mutex mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::shared_ptr<const std::vector<int64_t>> cached_permutation_;
};

// Side-by-side debug picture of a pair (A | B | depth A | depth B, depths as
// grey disparity, black = 0), for WritePngFile / WriteJpegFile.
RgbImage DrawTrainingPair(const TrainingPair& pair);

}  // namespace l2m
