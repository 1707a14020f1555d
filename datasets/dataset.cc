#include "datasets/dataset.h"

#include "datasets/metrics.h"
#include "datasets/npz.h"
#include "l2m_core/util/file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace l2m {
namespace {

const char* kImageExtensions[] = {".png",
                                  ".jpg",
                                  ".jpeg",
                                  ".ppm",
                                  ".pgm",
                                  ".bmp",
                                  ".tif",
                                  ".tiff",
                                  ".JPG",
                                  ".PNG"};

std::string JoinPath(const std::string& a, const std::string& b) {
  return (fs::path(a) / b).string();
}

// `dir/stem.<ext>` for the first image extension that exists, or "".
std::string FindImage(const std::string& dir, const std::string& stem) {
  for (const char* ext : kImageExtensions) {
    const std::string path = JoinPath(dir, stem + ext);
    if (FileExists(path)) return path;
  }
  return "";
}

std::vector<double> ReadNumbers(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<double> values;
  std::string line;
  while (std::getline(in, line)) {
    // `#` starts a comment (derived files carry a provenance line).
    line = line.substr(0, line.find('#'));
    std::istringstream tokens(line);
    std::string token;
    while (tokens >> token) {
      try {
        size_t used = 0;
        values.push_back(std::stod(token, &used));
        if (used != token.size()) throw std::invalid_argument(token);
      } catch (const std::exception&) {
        throw std::runtime_error(path + ": not a number: '" + token + "'");
      }
    }
  }
  return values;
}

cv::Matx33d Matx33FromValues(const std::vector<double>& v, size_t offset) {
  cv::Matx33d m;
  for (int i = 0; i < 9; ++i) m.val[i] = v[offset + i];
  return m;
}

cv::Matx33d ReadHomographyFile(const std::string& path) {
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".xml") == 0) {
    cv::FileStorage fs_in(path, cv::FileStorage::READ);
    if (!fs_in.isOpened()) throw std::runtime_error(path + ": cannot open");
    cv::Mat H;
    for (cv::FileNodeIterator it = fs_in.root().begin();
         it != fs_in.root().end();
         ++it) {
      (*it) >> H;
      if (!H.empty()) break;
    }
    if (H.rows != 3 || H.cols != 3)
      throw std::runtime_error(path + ": no 3x3 matrix in the file");
    H.convertTo(H, CV_64F);
    return cv::Matx33d(H);
  }
  const std::vector<double> v = ReadNumbers(path);
  if (v.size() != 9)
    throw std::runtime_error(path +
                             ": expected 9 numbers (3x3 homography), found " +
                             std::to_string(v.size()));
  return Matx33FromValues(v, 0);
}

// Reads the CMP pairs of `dir` (NAME_model.txt + NAMEA.* + NAMEB.*).
void AddCmpPairs(const std::string& dir, std::vector<EvalPair>* pairs) {
  std::vector<std::string> models;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    const std::string suffix = "_model.txt";
    if (file.size() > suffix.size() &&
        file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0)
      models.push_back(file.substr(0, file.size() - suffix.size()));
  }
  std::sort(models.begin(), models.end());
  for (const std::string& name : models) {
    EvalPair pair;
    pair.name = name;
    pair.geometry = PairGeometry::kHomography;
    pair.image_path1 = FindImage(dir, name + "A");
    pair.image_path2 = FindImage(dir, name + "B");
    if (pair.image_path1.empty())
      pair.image_path1 = JoinPath(dir, name + "A.png");
    if (pair.image_path2.empty())
      pair.image_path2 = JoinPath(dir, name + "B.png");
    // The file maps B to A in 1-based (MATLAB) pixels; we need A -> B in
    // COLMAP pixels (x_colmap = x_1based - 0.5).
    const cv::Matx33d H_a_from_b =
        ReadHomographyFile(JoinPath(dir, name + "_model.txt"));
    pair.H = ShiftHomography(H_a_from_b.inv(), -0.5);
    const std::string vpts = JoinPath(dir, name + "_vpts.txt");
    if (FileExists(vpts)) {
      const std::vector<double> v = ReadNumbers(vpts);
      if (v.size() % 4 != 0)
        throw std::runtime_error(vpts +
                                 ": expected lines of 4 numbers (xA yA xB yB)");
      for (size_t i = 0; i < v.size(); i += 4)
        pair.gt_points.emplace_back(
            v[i] - 0.5, v[i + 1] - 0.5, v[i + 2] - 0.5, v[i + 3] - 0.5);
    }
    pairs->push_back(std::move(pair));
  }
}

// Oxford sequences: H1toNp(.xml) with <prefix>1.* and <prefix>N.* beside.
void AddOxfordPairs(const std::string& dir, std::vector<EvalPair>* pairs) {
  std::vector<std::pair<std::string, int>> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("H1to", 0) != 0) continue;
    size_t end = 4;
    while (end < file.size() && isdigit(static_cast<unsigned char>(file[end])))
      ++end;
    if (end == 4 || end >= file.size() || file[end] != 'p') continue;
    const std::string rest = file.substr(end + 1);
    if (!rest.empty() && rest != ".xml" && rest != ".txt") continue;
    files.emplace_back(file, std::stoi(file.substr(4, end - 4)));
  }
  std::sort(files.begin(), files.end());
  for (const auto& [file, n] : files) {
    // Image prefix: "img" (Oxford) or whatever prefix has both 1 and N.
    std::string path1, pathn, prefix;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string stem = entry.path().stem().string();
      if (stem.size() < 2 || stem.back() != '1') continue;
      const std::string p = stem.substr(0, stem.size() - 1);
      if (p.empty() || isdigit(static_cast<unsigned char>(p.back()))) continue;
      const std::string a = FindImage(dir, p + "1");
      const std::string b = FindImage(dir, p + std::to_string(n));
      if (!a.empty() && !b.empty()) {
        path1 = a, pathn = b, prefix = p;
        break;
      }
    }
    if (path1.empty())
      throw std::runtime_error(JoinPath(dir, file) +
                               ": no images <prefix>1.* and <prefix>" +
                               std::to_string(n) + ".* beside it");
    EvalPair pair;
    pair.name = fs::path(dir).filename().string() + "_" + prefix + "1to" +
                std::to_string(n);
    pair.geometry = PairGeometry::kHomography;
    pair.image_path1 = path1;
    pair.image_path2 = pathn;
    // Oxford homographies are in 0-based pixels: x_colmap = x + 0.5.
    pair.H = ShiftHomography(ReadHomographyFile(JoinPath(dir, file)), 0.5);
    pairs->push_back(std::move(pair));
  }
}

std::string FirstExistingDir(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates)
    if (DirExists(c)) return c;
  return "";
}

std::string FirstExistingFile(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates)
    if (FileExists(c)) return c;
  return "";
}

std::string Join(const std::vector<std::string>& items,
                 const std::string& sep) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

const char kScanNetHint[] =
    "ScanNet-1500 (LoFTR/SuperGlue split) needs (1) LoFTR's "
    "assets/scannet_test_1500/{test.npz,intrinsics.npz} "
    "(github.com/zju3dv/LoFTR) "
    "and (2) the 1500 pairs' images from LoFTR's test data "
    "(scannet_test_1500.tar from the Google-Drive 'testdata' folder linked in "
    "LoFTR's docs/TRAINING.md; ScanNet's terms of use apply). Put them as "
    "DATA/test.npz, DATA/intrinsics.npz and "
    "DATA/scans_test/sceneXXXX_00/color/N.jpg "
    "(DATA/sceneXXXX_00/color/N.jpg also works).";

const char kMegaDepthHint[] =
    "MegaDepth-1500 needs (1) LoFTR's "
    "assets/megadepth_test_1500_scene_info/*.npz "
    "(github.com/zju3dv/LoFTR; 0015_0.1_0.3 ... 0022_0.5_0.7) and (2) the test "
    "images (megadepth_test_1500.tar from LoFTR's Google-Drive 'testdata', or "
    "MegaDepth v1's Undistorted_SfM). Put them as "
    "DATA/megadepth_test_1500_scene_info/*.npz "
    "and DATA/Undistorted_SfM/0015/images/*.jpg (the paths inside the .npz, "
    "relative to DATA).";

PairDataset ReadScanNetPairsBenchmark(const std::string& data_path) {
  PairDataset d;
  d.name = "scannet_pairs";
  d.root = data_path;
  d.scene_kind = SceneKind::kIndoor;
  d.download_hint =
      "A SuperGlue pair list (*_pairs_with_gt.txt) with its images: e.g. "
      "SuperGlue's assets/scannet_sample_pairs_with_gt.txt + "
      "assets/scannet_sample_images/ as DATA/*_pairs_with_gt.txt + "
      "DATA/images/.";
  std::string pairs_file;
  std::string dir = data_path;
  if (FileExists(data_path) && !DirExists(data_path)) {
    pairs_file = data_path;
    dir = fs::path(data_path).parent_path().string();
  } else if (DirExists(data_path)) {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(data_path)) {
      const std::string f = entry.path().filename().string();
      if (f.size() > 18 &&
          f.compare(f.size() - 18, 18, "_pairs_with_gt.txt") == 0)
        found.push_back(entry.path().string());
    }
    std::sort(found.begin(), found.end());
    if (found.size() != 1)
      throw std::runtime_error(
          data_path + ": expected exactly one *_pairs_with_gt.txt, found " +
          std::to_string(found.size()) +
          (found.empty()
               ? ""
               : " (" + Join(found, ", ") + "); pass the file as --data_path") +
          ". " + d.download_hint);
    pairs_file = found[0];
  } else {
    throw std::runtime_error(data_path + ": not found. " + d.download_hint);
  }
  const std::string images = JoinPath(dir, "images");
  d.pairs = ReadSuperGluePairs(pairs_file, DirExists(images) ? images : dir);
  return d;
}

PairDataset ReadHomographyBenchmark(const std::string& data_path) {
  PairDataset d;
  d.name = "homography";
  d.root = data_path;
  d.scene_kind = SceneKind::kPlanar;
  d.download_hint =
      "Homography pairs: the CMP 'homogr' set (NAMEA.*, NAMEB.*, "
      "NAME_model.txt, "
      "e.g. from github.com/danini/magsac data/homography) and/or Oxford "
      "affine "
      "sequences (img1.ppm ... img6.ppm with H1toNp) under DATA or DATA/pairs.";
  if (!DirExists(data_path))
    throw std::runtime_error(data_path + ": not found. " + d.download_hint);
  d.pairs = ReadHomographyPairs(data_path);
  if (d.pairs.empty())
    throw std::runtime_error(data_path + ": no homography pairs found. " +
                             d.download_hint);
  return d;
}

PairDataset ReadScanNet1500Benchmark(const std::string& data_path) {
  PairDataset d;
  d.name = "scannet1500";
  d.root = data_path;
  d.scene_kind = SceneKind::kIndoor;
  d.download_hint = kScanNetHint;
  std::vector<std::string> index_dirs;
  for (const char* sub : {"",
                          "scannet_test_1500",
                          "index/scannet_test_1500",
                          "assets/scannet_test_1500",
                          "scannet_indices/scannet_test_1500"})
    index_dirs.push_back(JoinPath(data_path, sub));
  std::string index_dir;
  for (const std::string& c : index_dirs)
    if (FileExists(JoinPath(c, "test.npz")) &&
        FileExists(JoinPath(c, "intrinsics.npz"))) {
      index_dir = c;
      break;
    }
  if (index_dir.empty())
    throw std::runtime_error(
        data_path + ": no test.npz + intrinsics.npz found (looked in " +
        Join(index_dirs, ", ") + "). " + d.download_hint);
  // Images: the first candidate root holding the first pair's scene folder.
  const std::string test_npz = JoinPath(index_dir, "test.npz");
  std::vector<EvalPair> probe = ReadScanNet1500(
      test_npz, JoinPath(index_dir, "intrinsics.npz"), data_path);
  std::string image_root = JoinPath(data_path, "scans_test");
  if (!probe.empty()) {
    const fs::path rel = fs::relative(probe[0].image_path1, data_path);
    for (const char* sub : {"scans_test", "", "test", "scannet_test_1500"}) {
      const std::string root = JoinPath(data_path, sub);
      if (FileExists(JoinPath(root, rel.string()))) {
        image_root = root;
        break;
      }
    }
  }
  d.pairs = ReadScanNet1500(
      test_npz, JoinPath(index_dir, "intrinsics.npz"), image_root);
  return d;
}

PairDataset ReadMegaDepth1500Benchmark(const std::string& data_path) {
  PairDataset d;
  d.name = "megadepth1500";
  d.root = data_path;
  d.scene_kind = SceneKind::kOutdoor;
  d.download_hint = kMegaDepthHint;
  std::vector<std::string> index_dirs;
  for (const char* sub : {"megadepth_test_1500_scene_info",
                          "index/scene_info_val_1500",
                          "scene_info_val_1500",
                          "assets/megadepth_test_1500_scene_info",
                          ""})
    index_dirs.push_back(JoinPath(data_path, sub));
  std::vector<std::string> files;
  for (const std::string& dir : index_dirs) {
    if (!DirExists(dir)) continue;
    const std::string list =
        FirstExistingFile({JoinPath(dir, "megadepth_test_1500.txt"),
                           JoinPath(data_path, "megadepth_test_1500.txt")});
    if (!list.empty()) {
      std::ifstream in(list);
      std::string name;
      while (in >> name) {
        if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npz") != 0)
          name += ".npz";
        const std::string path = JoinPath(dir, name);
        if (!FileExists(path))
          throw std::runtime_error(list + ": lists " + name +
                                   ", which is not in " + dir + ". " +
                                   d.download_hint);
        files.push_back(path);
      }
    } else {
      for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().extension() == ".npz")
          files.push_back(entry.path().string());
      std::sort(files.begin(), files.end());
    }
    if (!files.empty()) break;
  }
  if (files.empty())
    throw std::runtime_error(
        data_path + ": no MegaDepth scene-info .npz found (looked in " +
        Join(index_dirs, ", ") + "). " + d.download_hint);
  std::string image_root = data_path;
  for (const std::string& file : files) {
    std::vector<EvalPair> pairs = ReadMegaDepthSceneInfo(file, data_path);
    if (d.pairs.empty() && !pairs.empty()) {
      // LoFTR keeps the images under DATA/test/, RoMa under DATA/.
      const fs::path rel = fs::relative(pairs[0].image_path1, data_path);
      for (const char* sub : {"", "test", "megadepth_test_1500"})
        if (FileExists(JoinPath(JoinPath(data_path, sub), rel.string()))) {
          image_root = JoinPath(data_path, sub);
          break;
        }
    }
    if (image_root != data_path)
      pairs = ReadMegaDepthSceneInfo(file, image_root);
    for (EvalPair& p : pairs) d.pairs.push_back(std::move(p));
  }
  return d;
}

std::mutex& RegistryMutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, DatasetReader>& Registry() {
  static std::map<std::string, DatasetReader> registry = {
      {"scannet_pairs", ReadScanNetPairsBenchmark},
      {"homography", ReadHomographyBenchmark},
      {"scannet1500", ReadScanNet1500Benchmark},
      {"megadepth1500", ReadMegaDepth1500Benchmark},
  };
  return registry;
}

}  // namespace

void CheckDatasetImages(const PairDataset& dataset) {
  std::vector<std::string> missing;
  size_t num_missing = 0;
  std::map<std::string, bool> seen;
  for (const EvalPair& p : dataset.pairs)
    for (const std::string* path : {&p.image_path1, &p.image_path2}) {
      if (seen.count(*path)) continue;
      seen[*path] = true;
      if (!FileExists(*path)) {
        ++num_missing;
        if (missing.size() < 3) missing.push_back(*path);
      }
    }
  if (num_missing == 0) return;
  throw std::runtime_error(dataset.name + " at " + dataset.root + ": " +
                           std::to_string(num_missing) + " of " +
                           std::to_string(seen.size()) +
                           " images are missing (e.g. " + Join(missing, ", ") +
                           "). " + dataset.download_hint);
}

std::vector<EvalPair> ReadSuperGluePairs(const std::string& pairs_path,
                                         const std::string& image_dir) {
  std::ifstream in(pairs_path);
  if (!in) throw std::runtime_error(pairs_path + ": cannot open");
  std::vector<EvalPair> pairs;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::istringstream ss(line);
    std::vector<std::string> tokens;
    std::string tok;
    while (ss >> tok) tokens.push_back(tok);
    if (tokens.empty() || tokens[0][0] == '#') continue;
    const std::string where = pairs_path + ":" + std::to_string(line_no);
    if (tokens.size() != 38)
      throw std::runtime_error(
          where +
          ": expected 38 fields (name0 name1 rot0 rot1 K0[9] "
          "K1[9] T_0to1[16]), found " +
          std::to_string(tokens.size()));
    std::vector<double> v;
    for (size_t i = 2; i < tokens.size(); ++i) {
      try {
        v.push_back(std::stod(tokens[i]));
      } catch (const std::exception&) {
        throw std::runtime_error(where + ": not a number: '" + tokens[i] + "'");
      }
    }
    if (v[0] != 0 || v[1] != 0)
      throw std::runtime_error(
          where + ": EXIF rotations (rot0/rot1 != 0) are not supported");
    EvalPair p;
    p.name = fs::path(tokens[0]).stem().string() + "-" +
             fs::path(tokens[1]).stem().string();
    p.image_path1 = JoinPath(image_dir, tokens[0]);
    p.image_path2 = JoinPath(image_dir, tokens[1]);
    p.K1 = Matx33FromValues(v, 2);
    p.K2 = Matx33FromValues(v, 11);
    const cv::Matx44d T(&v[20]);
    p.R = T.get_minor<3, 3>(0, 0);
    p.t = cv::Vec3d(T(0, 3), T(1, 3), T(2, 3));
    if (std::abs(cv::determinant(p.R) - 1.0) > 1e-3)
      throw std::runtime_error(where +
                               ": T_0to1 has no rotation block (det != 1)");
    pairs.push_back(std::move(p));
  }
  return pairs;
}

std::vector<EvalPair> ReadHomographyPairs(const std::string& root) {
  std::vector<std::string> dirs = {root};
  if (DirExists(root))
    for (const auto& entry : fs::directory_iterator(root))
      if (entry.is_directory()) dirs.push_back(entry.path().string());
  std::sort(dirs.begin() + 1, dirs.end());
  std::vector<EvalPair> pairs;
  for (const std::string& dir : dirs) {
    AddCmpPairs(dir, &pairs);
    AddOxfordPairs(dir, &pairs);
  }
  return pairs;
}

std::vector<EvalPair> ReadScanNet1500(const std::string& test_npz,
                                      const std::string& intrinsics_npz,
                                      const std::string& image_root) {
  const auto test = ReadNpzArchive(test_npz);
  const auto intrinsics = ReadNpzArchive(intrinsics_npz);
  const NpyArray& names = NpzArray(test, "name", test_npz);
  const NpyArray& poses = NpzArray(test, "rel_pose", test_npz);
  if (names.shape.size() != 2 || names.shape[1] != 4)
    throw std::runtime_error(test_npz + ": 'name' must be [N, 4], not " +
                             PyValue::Array(names).Describe());
  const int64_t n = names.shape[0];
  if (poses.NumElements() != n * 12)
    throw std::runtime_error(
        test_npz +
        ": 'rel_pose' must be [N, 3, 4] with N = " + std::to_string(n));
  const std::vector<double> id = names.ToDoubles();
  const std::vector<double> pose = poses.ToDoubles();
  std::vector<EvalPair> pairs;
  for (int64_t i = 0; i < n; ++i) {
    char scene[64];
    snprintf(scene,
             sizeof(scene),
             "scene%04d_%02d",
             static_cast<int>(id[4 * i]),
             static_cast<int>(id[4 * i + 1]));
    const std::string f0 = std::to_string(static_cast<int64_t>(id[4 * i + 2]));
    const std::string f1 = std::to_string(static_cast<int64_t>(id[4 * i + 3]));
    const NpyArray& K = NpzArray(intrinsics, scene, intrinsics_npz);
    const std::vector<double> k = K.ToDoubles();
    if (k.size() != 9)
      throw std::runtime_error(intrinsics_npz + ": '" + scene +
                               "' is not a 3x3 matrix");
    EvalPair p;
    p.name = std::string(scene) + "/" + f0 + "-" + f1;
    p.image_path1 =
        JoinPath(image_root, std::string(scene) + "/color/" + f0 + ".jpg");
    p.image_path2 =
        JoinPath(image_root, std::string(scene) + "/color/" + f1 + ".jpg");
    p.K1 = p.K2 = Matx33FromValues(k, 0);
    // LoFTR's intrinsics are those of the 640x480 images.
    p.K_size1 = p.K_size2 = cv::Size(640, 480);
    const double* T = &pose[12 * i];
    p.R = cv::Matx33d(T[0], T[1], T[2], T[4], T[5], T[6], T[8], T[9], T[10]);
    p.t = cv::Vec3d(T[3], T[7], T[11]);
    pairs.push_back(std::move(p));
  }
  return pairs;
}

std::vector<EvalPair> ReadMegaDepthSceneInfo(const std::string& npz_path,
                                             const std::string& image_root) {
  const auto arrays = ReadNpzArchive(npz_path);
  const PyValue paths =
      PyValue::Array(NpzArray(arrays, "image_paths", npz_path));
  const PyValue intrinsics =
      PyValue::Array(NpzArray(arrays, "intrinsics", npz_path));
  const PyValue poses = PyValue::Array(NpzArray(arrays, "poses", npz_path));
  const PyValue pair_infos =
      PyValue::Array(NpzArray(arrays, "pair_infos", npz_path));
  const std::string stem = fs::path(npz_path).stem().string();
  std::vector<EvalPair> pairs;
  for (size_t k = 0; k < pair_infos.Size(); ++k) {
    const std::string where =
        npz_path + ": pair_infos[" + std::to_string(k) + "]";
    try {
      const std::vector<double> idx = pair_infos.Item(k).Item(0).AsDoubles();
      if (idx.size() != 2) throw std::runtime_error("expected (idx0, idx1)");
      const size_t i0 = static_cast<size_t>(idx[0]),
                   i1 = static_cast<size_t>(idx[1]);
      if (idx[0] < 0 || idx[1] < 0 || i0 >= paths.Size() || i1 >= paths.Size())
        throw std::runtime_error("image index out of range");
      EvalPair p;
      const std::string rel0 = paths.Item(i0).AsString();
      const std::string rel1 = paths.Item(i1).AsString();
      p.name = stem + "/" + fs::path(rel0).stem().string() + "-" +
               fs::path(rel1).stem().string();
      p.image_path1 = JoinPath(image_root, rel0);
      p.image_path2 = JoinPath(image_root, rel1);
      const std::vector<double> k0 = intrinsics.Item(i0).AsDoubles();
      const std::vector<double> k1 = intrinsics.Item(i1).AsDoubles();
      const std::vector<double> t0 = poses.Item(i0).AsDoubles();
      const std::vector<double> t1 = poses.Item(i1).AsDoubles();
      if (k0.size() != 9 || k1.size() != 9 || t0.size() != 16 ||
          t1.size() != 16)
        throw std::runtime_error("intrinsics must be 3x3 and poses 4x4");
      p.K1 = Matx33FromValues(k0, 0);
      p.K2 = Matx33FromValues(k1, 0);
      const cv::Matx44d T0(t0.data()), T1(t1.data());
      const cv::Matx33d R0 = T0.get_minor<3, 3>(0, 0),
                        R1 = T1.get_minor<3, 3>(0, 0);
      const cv::Vec3d c0(T0(0, 3), T0(1, 3), T0(2, 3)),
          c1(T1(0, 3), T1(1, 3), T1(2, 3));
      // cam1_from_cam0 = T1 * T0^-1.
      p.R = R1 * R0.t();
      p.t = c1 - p.R * c0;
      pairs.push_back(std::move(p));
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
  }
  return pairs;
}

void RegisterDatasetReader(const std::string& name, DatasetReader reader) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[name] = std::move(reader);
}

std::vector<std::string> KnownBenchmarks() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<std::string> names;
  for (const auto& entry : Registry()) names.push_back(entry.first);
  return names;
}

PairDataset CreateDataset(const std::string& benchmark,
                          const std::string& data_path) {
  DatasetReader reader;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(benchmark);
    if (it != Registry().end()) reader = it->second;
  }
  if (!reader) {
    std::string known;
    for (const std::string& n : KnownBenchmarks())
      known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown benchmark '" + benchmark +
                                "' (known: " + known + ")");
  }
  return reader(data_path);
}

}  // namespace l2m
