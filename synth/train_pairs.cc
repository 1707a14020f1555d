#include "synth/train_pairs.h"

#include "l2m_core/image/resize.h"
#include "synth/disparity.h"
#include "synth/rasterizer.h"

#include <Eigen/Geometry>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace l2m {
namespace {

namespace fs = std::filesystem;

// A float image, row-major, `channels` interleaved.
struct FloatImage {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<float> data;

  FloatImage() = default;
  FloatImage(int h, int w, int c, float value = 0)
      : height(h),
        width(w),
        channels(c),
        data(static_cast<size_t>(h) * w * c, value) {}
  float* Pixel(int r, int c) {
    return data.data() + (static_cast<size_t>(r) * width + c) * channels;
  }
};

bool IsImageExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// SplitMix64's finaliser: the FNV hash of short names is poorly mixed in the
// high bits that the split threshold reads.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Decoded photo -> the centred height x width crop of its resize that covers
// it (short side to the output size), with Pillow's antialiased bicubic (the
// resize the matcher's input transform uses; no OpenCV here).
RgbImage ResizeAndCrop(const RgbImage& image, int height, int width) {
  const double scale = std::max(static_cast<double>(width) / image.width,
                                static_cast<double>(height) / image.height);
  const int w =
      std::max(width, static_cast<int>(std::lround(image.width * scale)));
  const int h =
      std::max(height, static_cast<int>(std::lround(image.height * scale)));
  std::vector<uint8_t> resized;
  const uint8_t* src = image.pixels.data();
  if (w != image.width || h != image.height) {
    resized.resize(static_cast<size_t>(h) * w * 3);
    ResizePil(image.pixels.data(),
              image.height,
              image.width,
              3,
              h,
              w,
              PilFilter::kBicubic,
              resized.data());
    src = resized.data();
  }
  RgbImage out;
  out.height = height;
  out.width = width;
  out.pixels.resize(static_cast<size_t>(height) * width * 3);
  const int x0 = (w - width) / 2, y0 = (h - height) / 2;
  for (int r = 0; r < height; ++r)
    std::memcpy(out.pixels.data() + static_cast<size_t>(r) * width * 3,
                src + (static_cast<size_t>(r + y0) * w + x0) * 3,
                static_cast<size_t>(width) * 3);
  return out;
}

// Camera-frame unit normals of the lifted surface, facing the camera:
// central differences of the unprojected pixel centres, one-sided where a
// neighbour lies across a depth discontinuity (> 5 % apart), and the
// viewing direction where neither side is usable.
std::vector<Eigen::Vector3f> SurfaceNormals(const std::vector<float>& depth,
                                            int height,
                                            int width,
                                            const PinholeCamera& camera) {
  auto point = [&](int r, int c) {
    const float z = depth[static_cast<size_t>(r) * width + c];
    return Eigen::Vector3f(
        static_cast<float>((c + 0.5 - camera.cx) / camera.fx) * z,
        static_cast<float>((r + 0.5 - camera.cy) / camera.fy) * z,
        z);
  };
  auto near = [&](int r, int c, int r2, int c2) {
    const float a = depth[static_cast<size_t>(r) * width + c];
    const float b = depth[static_cast<size_t>(r2) * width + c2];
    return b > 0 && std::abs(a - b) < 0.05f * a;
  };
  std::vector<Eigen::Vector3f> normals(static_cast<size_t>(height) * width);
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const Eigen::Vector3f p = point(r, c);
      Eigen::Vector3f& n = normals[static_cast<size_t>(r) * width + c];
      n = -p.normalized();
      if (!(p.z() > 0)) continue;
      const int cl = (c > 0 && near(r, c, r, c - 1)) ? c - 1 : c;
      const int cr = (c + 1 < width && near(r, c, r, c + 1)) ? c + 1 : c;
      const int ru = (r > 0 && near(r, c, r - 1, c)) ? r - 1 : r;
      const int rd = (r + 1 < height && near(r, c, r + 1, c)) ? r + 1 : r;
      if (cl == cr || ru == rd) continue;
      Eigen::Vector3f m =
          (point(r, cr) - point(r, cl)).cross(point(rd, c) - point(ru, c));
      if (!(m.norm() > 1e-12f)) continue;
      m.normalize();
      n = m.dot(p) > 0 ? -m : m;
    }
  }
  return normals;
}

// Push-pull hole filling: a pyramid of known-pixel averages (push), then each
// level's holes take the bilinear upsampling of the coarser level (pull).
// Smooth colours continuing the surroundings, a few ms at 448^2 (OpenCV's
// Telea, used by `synth views`, is not available without OpenCV and costs
// ~100 ms per view).
void FillHoles(const std::vector<uint8_t>& known, FloatImage* image) {
  struct Level {
    int h, w;
    std::vector<float> rgb;  // Premultiplied by weight.
    std::vector<float> weight;
  };
  std::vector<Level> levels;
  {
    Level base{image->height,
               image->width,
               image->data,
               std::vector<float>(known.begin(), known.end())};
    for (size_t k = 0; k < base.weight.size(); ++k) {
      base.weight[k] = known[k] ? 1.0f : 0.0f;
      for (int ch = 0; ch < 3; ++ch) base.rgb[k * 3 + ch] *= base.weight[k];
    }
    levels.push_back(std::move(base));
  }
  while (levels.back().h > 1 || levels.back().w > 1) {
    const Level& fine = levels.back();
    Level coarse{(fine.h + 1) / 2, (fine.w + 1) / 2, {}, {}};
    coarse.rgb.assign(static_cast<size_t>(coarse.h) * coarse.w * 3, 0);
    coarse.weight.assign(static_cast<size_t>(coarse.h) * coarse.w, 0);
    for (int r = 0; r < fine.h; ++r)
      for (int c = 0; c < fine.w; ++c) {
        const size_t f = static_cast<size_t>(r) * fine.w + c;
        const size_t k = static_cast<size_t>(r / 2) * coarse.w + c / 2;
        coarse.weight[k] += fine.weight[f];
        for (int ch = 0; ch < 3; ++ch)
          coarse.rgb[k * 3 + ch] += fine.rgb[f * 3 + ch];
      }
    levels.push_back(std::move(coarse));
  }
  // Normalise every level into plain colours; the 1x1 top is grey if the
  // whole view is a hole.
  std::vector<std::vector<float>> color(levels.size());
  for (int l = static_cast<int>(levels.size()) - 1; l >= 0; --l) {
    const Level& level = levels[l];
    color[l].resize(level.rgb.size());
    for (int r = 0; r < level.h; ++r)
      for (int c = 0; c < level.w; ++c) {
        const size_t k = static_cast<size_t>(r) * level.w + c;
        if (level.weight[k] > 0) {
          for (int ch = 0; ch < 3; ++ch)
            color[l][k * 3 + ch] = level.rgb[k * 3 + ch] / level.weight[k];
          continue;
        }
        if (l + 1 == static_cast<int>(levels.size())) {
          for (int ch = 0; ch < 3; ++ch) color[l][k * 3 + ch] = 0.5f;
          continue;
        }
        // Bilinear in the coarser level (pixel centres, clamped).
        const Level& up = levels[l + 1];
        const float x = std::clamp((c + 0.5f) / 2 - 0.5f, 0.0f, up.w - 1.0f);
        const float y = std::clamp((r + 0.5f) / 2 - 0.5f, 0.0f, up.h - 1.0f);
        const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
        const int x1 = std::min(x0 + 1, up.w - 1),
                  y1 = std::min(y0 + 1, up.h - 1);
        const float fx = x - x0, fy = y - y0;
        const float* u = color[l + 1].data();
        for (int ch = 0; ch < 3; ++ch) {
          auto at = [&](int yy, int xx) {
            return u[(static_cast<size_t>(yy) * up.w + xx) * 3 + ch];
          };
          color[l][k * 3 + ch] =
              (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) +
              fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
        }
      }
  }
  for (size_t k = 0; k < known.size(); ++k)
    if (!known[k])
      for (int ch = 0; ch < 3; ++ch)
        image->data[k * 3 + ch] = color[0][k * 3 + ch];
}

// Brightness, contrast (around the mean grey), gamma and per-channel gains,
// drawn independently for each view: the appearance changes that real image
// pairs have and that the matcher must ignore.
void PhotometricJitter(const PhotoPairOptions& options,
                       std::mt19937_64* rng,
                       FloatImage* image) {
  std::uniform_real_distribution<double> u(-1, 1);
  const double brightness = 1 + options.max_brightness * u(*rng);
  const double contrast = 1 + options.max_contrast * u(*rng);
  const double g = options.max_gamma * u(*rng);
  const double gamma = g >= 0 ? 1 + g : 1 / (1 - g);
  float gain[3];
  for (float& v : gain)
    v = static_cast<float>(brightness * (1 + options.max_color_gain * u(*rng)));
  double mean = 0;
  for (size_t k = 0; k < image->data.size(); ++k)
    mean += image->data[k] * gain[k % 3];
  mean /= std::max<size_t>(1, image->data.size());
  const float m = static_cast<float>(mean), cf = static_cast<float>(contrast),
              gf = static_cast<float>(gamma);
  // v^gamma from a table with linear interpolation (error < 1e-5 except
  // near 0 for gamma < 1, still < 1e-3): std::pow per value was a quarter of
  // a pair's time.
  constexpr int kSteps = 1024;
  float table[kSteps + 2];
  for (int i = 0; i <= kSteps; ++i)
    table[i] = std::pow(static_cast<float>(i) / kSteps, gf);
  table[kSteps + 1] = table[kSteps];
  for (size_t k = 0; k < image->data.size(); ++k) {
    const float v =
        std::clamp((image->data[k] * gain[k % 3] - m) * cf + m, 0.0f, 1.0f) *
        kSteps;
    const int i = static_cast<int>(v);
    image->data[k] = table[i] + (v - i) * (table[i + 1] - table[i]);
  }
}

at::Tensor ImageTensor(const FloatImage& image) {
  // HWC -> CHW.
  at::Tensor t = torch::from_blob(const_cast<float*>(image.data.data()),
                                  {image.height, image.width, 3},
                                  torch::kFloat32);
  return t.permute({2, 0, 1}).contiguous();
}

at::Tensor DepthTensor(const std::vector<float>& depth, int height, int width) {
  return torch::from_blob(
             const_cast<float*>(depth.data()), {height, width}, torch::kFloat32)
      .clone();
}

at::Tensor MatrixTensor(const Eigen::MatrixXd& m) {
  at::Tensor t = torch::empty({m.rows(), m.cols()}, torch::kFloat32);
  for (int r = 0; r < m.rows(); ++r)
    for (int c = 0; c < m.cols(); ++c) t[r][c] = static_cast<float>(m(r, c));
  return t;
}

}  // namespace

bool PhotoPairOptions::Check(std::string* error) const {
  if (photos.empty() && image_dir.empty() && image_list.empty()) {
    *error = "PhotoPair needs photos, an image_dir or an image_list";
    return false;
  }
  if (height < 16 || width < 16) {
    *error = "PhotoPair height and width must be >= 16";
    return false;
  }
  if (!(min_focal_fraction > 0 && max_focal_fraction >= min_focal_fraction)) {
    *error = "PhotoPair focal fractions need 0 < min <= max";
    return false;
  }
  if (!pose.Check(error)) return false;
  if (!(motion_scale >= 0 && std::isfinite(motion_scale))) {
    *error = "PhotoPair.motion_scale must be finite and >= 0";
    return false;
  }
  if (!(alpha_scale > 0) || !(alpha_threshold > 0 && alpha_threshold < 1)) {
    *error = "PhotoPair.alpha_scale must be > 0 and alpha_threshold in (0, 1)";
    return false;
  }
  if (!(relight_probability >= 0 && relight_probability <= 1) ||
      !(swap_probability >= 0 && swap_probability <= 1)) {
    *error = "PhotoPair relight/swap probabilities must be in [0, 1]";
    return false;
  }
  if (relight && !relight_options.Check(error)) return false;
  if (!(max_brightness >= 0 && max_brightness < 1) ||
      !(max_contrast >= 0 && max_contrast < 1) || !(max_gamma >= 0) ||
      !(max_color_gain >= 0 && max_color_gain < 1) || !(hole_noise >= 0)) {
    *error =
        "PhotoPair jitter ranges must be >= 0 (brightness, contrast and "
        "colour gain < 1) and hole_noise >= 0";
    return false;
  }
  if (!(validation_fraction >= 0 && validation_fraction <= 1)) {
    *error = "PhotoPair.validation_fraction must be in [0, 1]";
    return false;
  }
  if (split != "train" && split != "val" && split != "all") {
    *error = "PhotoPair.split must be train, val or all (got '" + split + "')";
    return false;
  }
  if (num_threads < 0) {
    *error = "PhotoPair.num_threads must be >= 0 (0 = all hardware threads)";
    return false;
  }
  return true;
}

bool PhotoPairSource::IsValidationPhoto(const std::string& name,
                                        double validation_fraction,
                                        uint64_t split_seed) {
  const uint64_t h = Mix(SeedFor(split_seed, name, -1));
  return static_cast<double>(h >> 11) * 0x1.0p-53 < validation_fraction;
}

PhotoPairSource::PhotoPairSource(const PhotoPairOptions& options)
    : options_(options) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument(error);
  std::vector<std::pair<std::string, std::string>> photos;  // name, path
  for (const std::string& path : options_.photos)
    photos.emplace_back(path, path);
  if (!options_.image_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(options_.image_dir, ec))
      throw std::runtime_error("PhotoPair.image_dir '" + options_.image_dir +
                               "' is not a folder");
    for (fs::recursive_directory_iterator it(options_.image_dir, ec), end;
         !ec && it != end;
         it.increment(ec)) {
      if (!it->is_regular_file() || !IsImageExtension(it->path())) continue;
      photos.emplace_back(
          fs::relative(it->path(), options_.image_dir).generic_string(),
          it->path().string());
    }
    if (ec)
      throw std::runtime_error("Cannot list PhotoPair.image_dir '" +
                               options_.image_dir + "': " + ec.message());
  }
  if (!options_.image_list.empty()) {
    std::ifstream in(options_.image_list);
    if (!in)
      throw std::runtime_error("Cannot read PhotoPair.image_list '" +
                               options_.image_list + "'");
    const fs::path base = fs::path(options_.image_list).parent_path();
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() &&
             (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      if (line.empty() || line[0] == '#') continue;
      // A TSV such as all_images.tsv: the first column is the path.
      const std::string path = line.substr(0, line.find('\t'));
      if (path == "path") continue;  // Header line.
      const fs::path p(path);
      photos.emplace_back(path, p.is_absolute() ? path : (base / p).string());
    }
  }
  std::sort(photos.begin(), photos.end());
  photos.erase(std::unique(photos.begin(), photos.end()), photos.end());
  for (const auto& [name, path] : photos) {
    if (options_.split != "all" &&
        IsValidationPhoto(name,
                          options_.validation_fraction,
                          options_.split_seed) != (options_.split == "val"))
      continue;
    names_.push_back(name);
    paths_.push_back(path);
  }
  if (names_.empty())
    throw std::runtime_error("PhotoPairSource: no photo in split '" +
                             options_.split + "' (" +
                             std::to_string(photos.size()) + " photos listed)");
}

int64_t PhotoPairSource::Size() const {
  return static_cast<int64_t>(names_.size());
}

int64_t PhotoPairSource::PhotoIndex(int64_t index) const {
  if (index < 0)
    throw std::out_of_range("PhotoPairSource: negative index " +
                            std::to_string(index));
  const int64_t n = Size();
  const int64_t epoch = index / n;
  std::shared_ptr<const std::vector<int64_t>> permutation;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_epoch_ == epoch) permutation = cached_permutation_;
  }
  if (!permutation) {
    // Own Fisher-Yates (std::shuffle's algorithm is the library's choice).
    auto p = std::make_shared<std::vector<int64_t>>(n);
    for (int64_t k = 0; k < n; ++k) (*p)[k] = k;
    std::mt19937_64 rng(Mix(options_.seed ^ Mix(static_cast<uint64_t>(epoch))));
    for (int64_t k = n - 1; k > 0; --k)
      std::swap((*p)[k], (*p)[rng() % static_cast<uint64_t>(k + 1)]);
    permutation = p;
    std::lock_guard<std::mutex> lock(mutex_);
    cached_epoch_ = epoch;
    cached_permutation_ = permutation;
  }
  return (*permutation)[index % n];
}

TrainingPair PhotoPairSource::Get(int64_t index) const {
  const int64_t photo = PhotoIndex(index);
  const std::string& name = names_[photo];
  const std::string& path = paths_[photo];
  const int H = options_.height, W = options_.width;
  // SeedFor takes an int: the index's high bits go into the base seed.
  std::mt19937_64 rng(
      SeedFor(options_.seed ^ Mix(static_cast<uint64_t>(index) >> 31),
              name,
              static_cast<int>(index & 0x7fffffff)));
  std::uniform_real_distribution<double> u(0, 1);

  RgbImage decoded;
  try {
    decoded = DecodeImageFile(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("PhotoPairSource: photo '" + path +
                             "': " + e.what());
  }
  const RgbImage crop = ResizeAndCrop(decoded, H, W);
  const size_t num_pixels = static_cast<size_t>(H) * W;

  // Procedural disparity (reference conventions: normalised to [0, 1] +
  // 0.001, depth = 1 / disparity) and the discontinuity test.
  const std::vector<float> disparity = ProceduralDisparityValues(W, H, rng());
  const std::vector<float> depth_a = DisparityToDepthValues(disparity);
  std::vector<uint8_t> visible(num_pixels);
  ComputeVisibleVertexMask(disparity.data(),
                           W,
                           H,
                           options_.alpha_scale,
                           options_.alpha_threshold,
                           visible.data());

  const double focal =
      options_.min_focal_fraction +
      (options_.max_focal_fraction - options_.min_focal_fraction) * u(rng);
  const PinholeCamera camera = PinholeCamera::FromFocalFraction(W, H, focal);
  PoseRangeOptions pose = options_.pose;
  pose.max_tx *= options_.motion_scale;
  pose.max_ty *= options_.motion_scale;
  pose.max_tz *= options_.motion_scale;
  const Eigen::Matrix4d b_from_a = SampleCam2FromCam1(pose, &rng);
  // Every draw of the geometry happens above, in a fixed order; appearance
  // (lights, hole grain, jitter) has its own stream, so switching relighting
  // or jitter on or off does not change a pair's GT.
  const bool swap = u(rng) < options_.swap_probability;
  const bool relit = u(rng) < options_.relight_probability && options_.relight;
  std::mt19937_64 appearance(rng());

  // Vertex colours: the crop, relit on the lifted surface. Lambertian
  // shading does not depend on the viewpoint, so shading the vertices once
  // and rendering view B from them relights both views consistently.
  FloatImage colors(H, W, 3);
  for (size_t k = 0; k < colors.data.size(); ++k)
    colors.data[k] = crop.pixels[k] * (1.0f / 255);
  if (relit) {
    const Lighting lighting =
        SampleLighting(options_.relight_options, &appearance);
    const std::vector<Eigen::Vector3f> normals =
        SurfaceNormals(depth_a, H, W, camera);
    for (int r = 0; r < H; ++r)
      for (int c = 0; c < W; ++c) {
        const size_t k = static_cast<size_t>(r) * W + c;
        const double z = depth_a[k];
        const Eigen::Vector3d p((c + 0.5 - camera.cx) / camera.fx * z,
                                (r + 0.5 - camera.cy) / camera.fy * z,
                                z);
        const Eigen::Vector3d d =
            DiffuseIrradiance(p,
                              normals[k].cast<double>(),
                              lighting,
                              options_.relight_options.exposure);
        for (int ch = 0; ch < 3; ++ch)
          colors.data[k * 3 + ch] =
              std::min(1.0f,
                       colors.data[k * 3 + ch] *
                           static_cast<float>(lighting.ambient + d[ch]));
      }
  }

  // View B: A's pixel centres lifted and moved into B's frame, the grid mesh
  // rasterised (faces with a vertex failing the discontinuity test dropped,
  // so stretched faces neither show nor occlude), colours interpolated.
  const Eigen::Matrix3f R = b_from_a.topLeftCorner<3, 3>().cast<float>();
  const Eigen::Vector3f t = b_from_a.topRightCorner<3, 1>().cast<float>();
  std::vector<Eigen::Vector3f> points(num_pixels);
  for (int r = 0; r < H; ++r) {
    const Eigen::Vector3f row_term =
        R.col(1) * static_cast<float>((r + 0.5 - camera.cy) / camera.fy) +
        R.col(2);
    for (int c = 0; c < W; ++c) {
      const size_t k = static_cast<size_t>(r) * W + c;
      points[k] =
          depth_a[k] * (R.col(0) * static_cast<float>((c + 0.5 - camera.cx) /
                                                      camera.fx) +
                        row_term) +
          t;
      if (!(depth_a[k] > 0)) visible[k] = 0;
    }
  }
  RasterOptions raster;
  raster.num_threads = options_.num_threads;
  Fragments fragments;
  RasterizeGridMesh(points, H, W, visible.data(), camera, raster, &fragments);
  FloatImage image_b(H, W, 3);
  std::vector<float> depth_b(num_pixels, 0.0f);
  std::vector<uint8_t> known(num_pixels, 0);
  const Eigen::Vector3f* vertex_colors =
      reinterpret_cast<const Eigen::Vector3f*>(colors.data.data());
  for (size_t k = 0; k < num_pixels; ++k) {
    if (!fragments.Covered(static_cast<int>(k))) continue;
    const Eigen::Vector3f color =
        fragments.Interpolate(static_cast<int>(k), W, vertex_colors);
    for (int ch = 0; ch < 3; ++ch) image_b.data[k * 3 + ch] = color[ch];
    depth_b[k] = fragments.depth[k];
    known[k] = 1;
  }
  FillHoles(known, &image_b);
  if (options_.hole_noise > 0) {
    std::normal_distribution<float> noise(
        0, static_cast<float>(options_.hole_noise));
    for (size_t k = 0; k < num_pixels; ++k)
      if (!known[k])
        for (int ch = 0; ch < 3; ++ch)
          image_b.data[k * 3 + ch] = std::clamp(
              image_b.data[k * 3 + ch] + noise(appearance), 0.0f, 1.0f);
  }
  FloatImage image_a = std::move(colors);
  if (options_.photometric_jitter) {
    PhotometricJitter(options_, &appearance, &image_a);
    PhotometricJitter(options_, &appearance, &image_b);
  }

  TrainingPair pair;
  pair.name = name + "#" + std::to_string(index);
  const at::Tensor K = MatrixTensor(camera.K());
  pair.calibration_a = K;
  pair.calibration_b = K.clone();
  if (swap) {
    // B is the query: the GT warp goes from the rendered view to the photo.
    pair.image_a = ImageTensor(image_b);
    pair.image_b = ImageTensor(image_a);
    pair.depth_a = DepthTensor(depth_b, H, W);
    pair.depth_b = DepthTensor(depth_a, H, W);
    Eigen::Matrix4d a_from_b = Eigen::Matrix4d::Identity();
    a_from_b.topLeftCorner<3, 3>() = b_from_a.topLeftCorner<3, 3>().transpose();
    a_from_b.topRightCorner<3, 1>() =
        -a_from_b.topLeftCorner<3, 3>() * b_from_a.topRightCorner<3, 1>();
    pair.cam2_from_cam1 = MatrixTensor(a_from_b);
    pair.name += ":swapped";
  } else {
    pair.image_a = ImageTensor(image_a);
    pair.image_b = ImageTensor(image_b);
    pair.depth_a = DepthTensor(depth_a, H, W);
    pair.depth_b = DepthTensor(depth_b, H, W);
    pair.cam2_from_cam1 = MatrixTensor(b_from_a);
  }
  return pair;
}

RgbImage DrawTrainingPair(const TrainingPair& pair) {
  const int H = static_cast<int>(pair.image_a.size(1));
  const int W = static_cast<int>(pair.image_a.size(2));
  RgbImage out;
  out.height = H;
  out.width = 4 * W;
  out.pixels.assign(static_cast<size_t>(H) * out.width * 3, 0);
  auto put = [&](int panel, const at::Tensor& hwc) {
    const at::Tensor bytes =
        (hwc.clamp(0, 1) * 255).round().to(torch::kUInt8).contiguous();
    const uint8_t* src = bytes.data_ptr<uint8_t>();
    for (int r = 0; r < H; ++r)
      std::memcpy(out.pixels.data() +
                      (static_cast<size_t>(r) * out.width + panel * W) * 3,
                  src + static_cast<size_t>(r) * W * 3,
                  static_cast<size_t>(W) * 3);
  };
  put(0, pair.image_a.permute({1, 2, 0}));
  put(1, pair.image_b.permute({1, 2, 0}));
  // Disparity relative to the nearest point of both views (0 stays black).
  const at::Tensor inv_a = torch::where(
      pair.depth_a > 0, 1 / pair.depth_a, torch::zeros_like(pair.depth_a));
  const at::Tensor inv_b = torch::where(
      pair.depth_b > 0, 1 / pair.depth_b, torch::zeros_like(pair.depth_b));
  const float scale = 1 / std::max(1e-6f,
                                   std::max(inv_a.max().item<float>(),
                                            inv_b.max().item<float>()));
  put(2, (inv_a * scale).unsqueeze(-1).expand({H, W, 3}));
  put(3, (inv_b * scale).unsqueeze(-1).expand({H, W, 3}));
  return out;
}

}  // namespace l2m
