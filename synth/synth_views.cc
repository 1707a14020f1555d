#include "synth/synth_views.h"

#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "synth/npy.h"

#include <Eigen/LU>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace l2m {

RelightMode ParseRelightMode(const std::string& text) {
  if (text == "off" || text == "none" || text.empty()) return RelightMode::kOff;
  if (text == "consistent") return RelightMode::kConsistent;
  if (text == "independent") return RelightMode::kIndependent;
  throw std::invalid_argument("Unknown relight mode '" + text +
                              "' (off, consistent, independent)");
}

bool ViewsOptions::Check(std::string* error) const {
  if (num_views < 1 || num_views > 1000) {
    *error = "Views.num_views must be in [1, 1000]";
    return false;
  }
  if (photos_per_shard < 1) {
    *error = "Views.photos_per_shard must be >= 1";
    return false;
  }
  if (!(consistency_threshold > 0)) {
    *error = "Views.consistency_threshold must be > 0";
    return false;
  }
  try {
    ParseRelightMode(relight);
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  return lifting.Check(error) && poses.Check(error) && view.Check(error) &&
         relight_options.Check(error) && sky_options.Check(error);
}

std::vector<std::string> ListImages(const std::string& dir) {
  if (!DirExists(dir))
    throw std::runtime_error("Image folder '" + dir + "' does not exist");
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" ||
        ext == ".tif" || ext == ".tiff" || ext == ".ppm")
      files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string FindDisparityFile(const std::string& dir, const std::string& stem) {
  std::string tried;
  for (const char* ext : {".npy", ".npz", ".png", ".tif", ".tiff", ".pgm"}) {
    const std::string path = dir + "/" + stem + ext;
    if (FileExists(path)) return path;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  throw std::runtime_error("No disparity for image '" + stem + "' in '" + dir +
                           "' (tried " + tried + ")");
}

SourcePhoto LoadSourcePhoto(const std::string& image_path,
                            const std::string& disparity_path,
                            const LiftingOptions& options,
                            uint64_t seed) {
  const cv::Mat image = ReadColorImage(image_path);
  SourcePhoto photo;
  photo.image = ResizeAndCenterCrop(image, options.size, false);
  if (disparity_path.empty()) {
    photo.disparity = ProceduralDisparity(options.size, options.size, seed);
    photo.procedural = true;
    return photo;
  }
  const cv::Mat raw = ReadDepthInput(disparity_path, options);
  if (raw.size() != image.size())
    throw std::runtime_error(
        "Disparity '" + disparity_path + "' is " + std::to_string(raw.cols) +
        "x" + std::to_string(raw.rows) + " but image '" + image_path + "' is " +
        std::to_string(image.cols) + "x" + std::to_string(image.rows));
  try {
    // As the reference: crop first, then min-max normalise the crop.
    const cv::Mat cropped = ResizeAndCenterCrop(raw, options.size, true);
    photo.disparity = NormalizeDisparity(cropped, options);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("Disparity '" + disparity_path + "': " + e.what());
  }
  return photo;
}

std::vector<SynthPair> MakePairs(const SourcePhoto& photo,
                                 const std::string& stem,
                                 const ViewsOptions& options) {
  const RelightMode relight = ParseRelightMode(options.relight);
  cv::Mat disparity = photo.disparity;
  int sky_pixels = 0;
  if (options.sky) {
    // Sky gets no geometry: its vertices are dropped, so it is a hole in the
    // novel view and has depth 0 (unsupervised) in both.
    const cv::Mat depth =
        photo.procedural ? cv::Mat() : DisparityToDepth(disparity);
    const cv::Mat sky = DetectSky(photo.image, depth, options.sky_options);
    sky_pixels = cv::countNonZero(sky);
    if (sky_pixels > 0) {
      disparity = disparity.clone();
      disparity.setTo(std::numeric_limits<float>::quiet_NaN(), sky);
    }
  }
  std::vector<SynthPair> pairs;
  for (int k = 0; k < options.num_views; ++k) {
    std::mt19937_64 rng(SeedFor(options.seed, stem, k));
    std::uniform_real_distribution<double> u(0, 1);
    const double focal = options.lifting.min_focal_fraction +
                         (options.lifting.max_focal_fraction -
                          options.lifting.min_focal_fraction) *
                             u(rng);
    const PinholeCamera camera = PinholeCamera::FromFocalFraction(
        photo.image.cols, photo.image.rows, focal);
    const LiftedImage lifted =
        LiftImage(photo.image, disparity, camera, options.lifting);
    const Eigen::Matrix4d T = SampleCam2FromCam1(options.poses, &rng);
    const NovelView view = RenderNovelView(lifted, camera, T, options.view);

    SynthPair pair;
    char suffix[16];
    std::snprintf(suffix, sizeof(suffix), "_%02d", k);
    pair.name = stem + suffix;
    pair.source = stem;
    pair.view_index = k;
    pair.camera1 = camera;
    pair.camera2 = camera;
    pair.cam2_from_cam1 = T;
    pair.image1 = photo.image;
    pair.image2 = view.image;
    pair.depth1 = lifted.depth;
    pair.depth2 = view.depth;
    pair.hole_mask2 = view.hole_mask;
    pair.sky_pixels = sky_pixels;
    if (relight != RelightMode::kOff) {
      const Lighting light1 = SampleLighting(options.relight_options, &rng);
      const Lighting light2 =
          relight == RelightMode::kConsistent
              ? TransformLighting(light1, T)
              : SampleLighting(options.relight_options, &rng);
      pair.image1 = Relight(
          pair.image1, pair.depth1, camera, light1, options.relight_options);
      pair.image2 = Relight(
          pair.image2, pair.depth2, camera, light2, options.relight_options);
    }
    const int threads = options.view.raster.num_threads;
    pair.warp12 = ComputeGtWarp(pair.depth1,
                                camera,
                                pair.depth2,
                                camera,
                                T,
                                options.consistency_threshold,
                                threads);
    pair.warp21 = ComputeGtWarp(pair.depth2,
                                camera,
                                pair.depth1,
                                camera,
                                T.inverse(),
                                options.consistency_threshold,
                                threads);
    pairs.push_back(std::move(pair));
  }
  return pairs;
}

namespace {

void WritePng(const std::string& path, const cv::Mat& image) {
  std::vector<uint8_t> bytes;
  if (!cv::imencode(".png", image, bytes))
    throw std::runtime_error("Cannot encode PNG for '" + path + "'");
  WriteFileAtomic(path, std::string(bytes.begin(), bytes.end()));
}

nlohmann::json Matrix(const Eigen::MatrixXd& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int r = 0; r < m.rows(); ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (int c = 0; c < m.cols(); ++c) row.push_back(m(r, c));
    rows.push_back(row);
  }
  return rows;
}

nlohmann::json PairMeta(const SynthPair& pair) {
  return {{"name", pair.name},
          {"source", pair.source},
          {"view_index", pair.view_index},
          {"width", pair.camera1.width},
          {"height", pair.camera1.height},
          {"pixel_convention", "COLMAP: top-left pixel centre at (0.5, 0.5)"},
          {"K1", Matrix(pair.camera1.K())},
          {"K2", Matrix(pair.camera2.K())},
          {"cam2_from_cam1", Matrix(pair.cam2_from_cam1)},
          {"covisibility12", pair.warp12.covisibility},
          {"covisibility21", pair.warp21.covisibility},
          {"hole_fraction2",
           static_cast<double>(cv::countNonZero(pair.hole_mask2)) /
               pair.hole_mask2.total()},
          {"sky_pixels", pair.sky_pixels}};
}

}  // namespace

void WritePairFolders(const std::string& output,
                      const SynthPair& pair,
                      bool debug,
                      int debug_matches) {
  for (const char* sub : {"image1",
                          "image2",
                          "depth1",
                          "depth2",
                          "cams",
                          "ext",
                          "warp",
                          "warp_back",
                          "holes",
                          "meta"})
    fs::create_directories(output + "/" + sub);
  const std::string& n = pair.name;
  WritePng(output + "/image1/" + n + ".png", pair.image1);
  WritePng(output + "/image2/" + n + ".png", pair.image2);
  WriteNpy(output + "/depth1/" + n + ".npy", pair.depth1);
  // The reference saves these as np.save("<stem>.png"), which appends .npy.
  WriteNpy(output + "/depth2/" + n + ".png.npy", pair.depth2);
  WriteNpy(output + "/cams/" + n + ".npy", Eigen::MatrixXd(pair.camera1.K()));
  WriteNpy(output + "/ext/" + n + ".png.npy",
           Eigen::MatrixXd(pair.cam2_from_cam1));
  WriteNpy(output + "/warp/" + n + ".npy", pair.warp12.warp);
  WriteNpy(output + "/warp_back/" + n + ".npy", pair.warp21.warp);
  WritePng(output + "/holes/" + n + ".png", pair.hole_mask2);
  if (debug) {
    fs::create_directories(output + "/debug");
    WritePng(output + "/debug/" + n + ".png",
             DrawGtMatches(pair.image1,
                           pair.image2,
                           pair.warp12,
                           debug_matches,
                           SeedFor(0, n, 0)));
  }
  WriteFileAtomic(output + "/meta/" + n + ".json",
                  PairMeta(pair).dump(2) + "\n");
}

ShardRecord PairToShardRecord(const SynthPair& pair) {
  ShardRecord record;
  record.name = pair.name;
  record.meta = PairMeta(pair);
  record.tensors["image1"] = {pair.image1, true};
  record.tensors["image2"] = {pair.image2, true};
  record.tensors["depth1"] = {pair.depth1, false};
  record.tensors["depth2"] = {pair.depth2, false};
  record.tensors["warp12"] = {pair.warp12.warp, false};
  record.tensors["warp21"] = {pair.warp21.warp, false};
  record.tensors["holes2"] = {pair.hole_mask2, true};
  return record;
}

int RunViewsPipeline(const std::string& image_dir,
                     const std::string& disparity_dir,
                     const std::string& output,
                     const ViewsOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  const std::vector<std::string> images = ListImages(image_dir);
  if (images.empty())
    throw std::runtime_error("No images in '" + image_dir + "'");
  if (!disparity_dir.empty() && !DirExists(disparity_dir))
    throw std::runtime_error("Disparity folder '" + disparity_dir +
                             "' does not exist");
  fs::create_directories(output);
  if (options.write_shards) fs::create_directories(output + "/shards");
  const int num_chunks =
      (static_cast<int>(images.size()) + options.photos_per_shard - 1) /
      options.photos_per_shard;
  Progress progress("synth views", static_cast<int64_t>(images.size()));
  int written = 0, skipped = 0;
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    const int begin = chunk * options.photos_per_shard;
    const int end =
        std::min<int>(images.size(), begin + options.photos_per_shard);
    char shard_name[32];
    std::snprintf(shard_name, sizeof(shard_name), "shard_%05d.l2ms", chunk);
    const std::string shard_path = output + "/shards/" + shard_name;
    // Resume: a chunk is done when its shard (if wanted) and the meta file of
    // every pair (if folders are wanted) exist.
    bool done = true;
    if (options.write_shards && !FileExists(shard_path)) done = false;
    for (int i = begin; i < end && done && options.write_folders; ++i) {
      const std::string stem = fs::path(images[i]).stem().string();
      char last[16];
      std::snprintf(last, sizeof(last), "_%02d", options.num_views - 1);
      if (!FileExists(output + "/meta/" + stem + last + ".json")) done = false;
    }
    if (done) {
      skipped += end - begin;
      progress.Add(end - begin);
      continue;
    }
    std::vector<ShardRecord> records;
    for (int i = begin; i < end; ++i) {
      const std::string stem = fs::path(images[i]).stem().string();
      const std::string disparity_path =
          disparity_dir.empty() ? "" : FindDisparityFile(disparity_dir, stem);
      const SourcePhoto photo =
          LoadSourcePhoto(images[i],
                          disparity_path,
                          options.lifting,
                          SeedFor(options.seed, stem, -1));
      const std::vector<SynthPair> pairs = MakePairs(photo, stem, options);
      for (const auto& pair : pairs) {
        if (options.write_folders)
          WritePairFolders(output,
                           pair,
                           options.num_debug < 0 || i < options.num_debug,
                           options.debug_matches);
        if (options.write_shards) records.push_back(PairToShardRecord(pair));
        ++written;
      }
      progress.Add();
    }
    if (options.write_shards) WriteShard(shard_path, records);
  }
  progress.Finish();
  if (skipped > 0)
    std::cout << "Skipped " << skipped << " photos already done (resume)\n";
  return written;
}

}  // namespace l2m

namespace l2m {

std::vector<std::string> ListPairs(const std::string& dir) {
  if (!DirExists(dir + "/meta"))
    throw std::runtime_error("'" + dir +
                             "' is not a `l2m synth views` output (no meta/)");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir + "/meta"))
    if (entry.path().extension() == ".json")
      names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

SynthPair ReadPairFolders(const std::string& dir, const std::string& name) {
  SynthPair pair;
  pair.name = name;
  const nlohmann::json meta =
      nlohmann::json::parse(ReadBinaryFile(dir + "/meta/" + name + ".json"));
  pair.source = meta.value("source", name);
  pair.view_index = meta.value("view_index", 0);
  pair.sky_pixels = meta.value("sky_pixels", 0);
  pair.image1 = ReadColorImage(dir + "/image1/" + name + ".png");
  pair.image2 = ReadColorImage(dir + "/image2/" + name + ".png");
  pair.depth1 = ReadNpy(dir + "/depth1/" + name + ".npy");
  pair.depth2 = ReadNpy(dir + "/depth2/" + name + ".png.npy");
  const std::string holes = dir + "/holes/" + name + ".png";
  pair.hole_mask2 = FileExists(holes) ? cv::imread(holes, cv::IMREAD_GRAYSCALE)
                                      : cv::Mat(pair.depth2 == 0);
  const cv::Mat K = ReadNpy(dir + "/cams/" + name + ".npy");
  const cv::Mat T = ReadNpy(dir + "/ext/" + name + ".png.npy");
  if (K.rows != 3 || K.cols != 3 || T.rows != 4 || T.cols != 4 ||
      K.type() != CV_32F || T.type() != CV_32F)
    throw std::runtime_error("Pair '" + name + "' in '" + dir +
                             "': cams must be 3x3 and ext 4x4 float32");
  if (pair.depth1.size() != pair.image1.size() ||
      pair.depth2.size() != pair.image2.size())
    throw std::runtime_error("Pair '" + name + "' in '" + dir +
                             "': depth and image sizes differ");
  pair.camera1.width = pair.image1.cols;
  pair.camera1.height = pair.image1.rows;
  pair.camera1.fx = K.at<float>(0, 0);
  pair.camera1.fy = K.at<float>(1, 1);
  pair.camera1.cx = K.at<float>(0, 2);
  pair.camera1.cy = K.at<float>(1, 2);
  pair.camera2 = pair.camera1;
  pair.camera2.width = pair.image2.cols;
  pair.camera2.height = pair.image2.rows;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) pair.cam2_from_cam1(r, c) = T.at<float>(r, c);
  return pair;
}

}  // namespace l2m
