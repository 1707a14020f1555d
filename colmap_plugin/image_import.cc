#include "colmap_plugin/image_import.h"

#include "l2m_core/util/progress.h"
#include "l2m_core/util/string.h"
#include "matcher_adapters/image_io.h"

#include <libexif/exif-data.h>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace l2m {
namespace {

const char* kImageExtensions[] = {".jpg",
                                  ".jpeg",
                                  ".png",
                                  ".tif",
                                  ".tiff",
                                  ".bmp",
                                  ".ppm",
                                  ".pgm",
                                  ".pnm",
                                  ".webp",
                                  ".jp2"};

bool HasImageExtension(const std::string& name) {
  const std::string lower = ToLower(name);
  for (const char* ext : kImageExtensions) {
    if (EndsWith(lower, ext)) return true;
  }
  return false;
}

// EXIF rational/short/long entry as a double, or 0 when absent.
double ExifNumber(ExifData* data, ExifTag tag) {
  ExifEntry* entry = exif_data_get_entry(data, tag);
  if (entry == nullptr || entry->components < 1 || entry->data == nullptr)
    return 0;
  const ExifByteOrder order = exif_data_get_byte_order(data);
  switch (entry->format) {
    case EXIF_FORMAT_RATIONAL: {
      const ExifRational r = exif_get_rational(entry->data, order);
      return r.denominator == 0
                 ? 0
                 : static_cast<double>(r.numerator) / r.denominator;
    }
    case EXIF_FORMAT_SRATIONAL: {
      const ExifSRational r = exif_get_srational(entry->data, order);
      return r.denominator == 0
                 ? 0
                 : static_cast<double>(r.numerator) / r.denominator;
    }
    case EXIF_FORMAT_SHORT:
      return exif_get_short(entry->data, order);
    case EXIF_FORMAT_LONG:
      return exif_get_long(entry->data, order);
    default:
      return 0;
  }
}

std::vector<double> DefaultParams(int model_id,
                                  double f,
                                  int width,
                                  int height) {
  const double cx = width / 2.0, cy = height / 2.0;
  switch (model_id) {
    case 0:
      return {f, cx, cy};
    case 1:
      return {f, f, cx, cy};
    case 2:
      return {f, cx, cy, 0};
    case 3:
      return {f, cx, cy, 0, 0};
    case 4:
      return {f, f, cx, cy, 0, 0, 0, 0};
    default:
      throw std::invalid_argument("unsupported camera model id " +
                                  std::to_string(model_id));
  }
}

}  // namespace

bool ImageImportOptions::Check(std::string* error) const {
  if (CameraModelIdFromName(camera_model) < 0) {
    *error = "unknown camera model '" + camera_model +
             "' (use SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV)";
    return false;
  }
  if (!(default_focal_length_factor > 0)) {
    *error = "default_focal_length_factor must be > 0";
    return false;
  }
  return true;
}

FocalFromExif ReadExifFocal(const std::string& path, int width, int height) {
  FocalFromExif result;
  ExifData* data = exif_data_new_from_file(path.c_str());
  if (data == nullptr) return result;
  const double max_size = std::max(width, height);
  const double f35 = ExifNumber(data, EXIF_TAG_FOCAL_LENGTH_IN_35MM_FILM);
  const double f_mm = ExifNumber(data, EXIF_TAG_FOCAL_LENGTH);
  const double plane_x_res =
      ExifNumber(data, EXIF_TAG_FOCAL_PLANE_X_RESOLUTION);
  const double plane_unit =
      ExifNumber(data, EXIF_TAG_FOCAL_PLANE_RESOLUTION_UNIT);
  const double exif_width = ExifNumber(data, EXIF_TAG_PIXEL_X_DIMENSION);
  exif_data_unref(data);
  if (f35 > 0) {
    result.focal_px = f35 / 36.0 * max_size;
    result.source = "exif_35mm";
  } else if (f_mm > 0 && plane_x_res > 0) {
    // Unit 2 = inch, 3 = cm, 4 = mm (EXIF 2.3); default inch.
    const double mm_per_unit = plane_unit == 3   ? 10.0
                               : plane_unit == 4 ? 1.0
                                                 : 25.4;
    double focal = f_mm * plane_x_res / mm_per_unit;
    // The resolution refers to the sensor readout; a downsized copy scales.
    if (exif_width > 0 && exif_width != width) focal *= width / exif_width;
    result.focal_px = focal;
    result.source = "exif_focal_plane";
  }
  return result;
}

std::vector<std::string> ListImageFiles(const std::string& image_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(image_dir, ec)) {
    throw std::runtime_error("Image folder '" + image_dir +
                             "' does not exist or is not a folder");
  }
  for (auto it = fs::recursive_directory_iterator(
           image_dir, fs::directory_options::follow_directory_symlink, ec);
       it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec)) continue;
    const std::string rel =
        fs::relative(it->path(), image_dir, ec).generic_string();
    if (HasImageExtension(rel)) names.push_back(rel);
  }
  std::sort(names.begin(), names.end());
  return names;
}

ImageImportSummary ImportImages(const std::string& image_dir,
                                const ImageImportOptions& options,
                                Database* database) {
  std::string error;
  if (!options.Check(&error))
    throw std::invalid_argument("ImageReader options: " + error);
  const std::vector<std::string> names = ListImageFiles(image_dir);
  if (names.empty()) {
    throw std::runtime_error(
        "Image folder '" + image_dir +
        "' contains no images (looked for .jpg, .png, .tif, ...)");
  }
  ImageImportSummary summary;
  summary.num_found = static_cast<int>(names.size());
  const int model_id = CameraModelIdFromName(options.camera_model);

  // A shared camera is reused across runs: the first camera in the database.
  camera_t shared_camera = 0;
  DbCamera shared_camera_data;
  if (options.single_camera) {
    const auto cameras = database->ReadAllCameras();
    if (!cameras.empty()) {
      shared_camera = cameras.front().camera_id;
      shared_camera_data = cameras.front();
    }
  }

  Progress progress("import images", static_cast<int64_t>(names.size()));
  for (const std::string& name : names) {
    progress.Add();
    if (database->ReadImageWithName(name).has_value()) {
      ++summary.num_existing;
      continue;
    }
    const std::string path = image_dir + "/" + name;
    int width = 0, height = 0;
    try {
      // Decoding validates the file (corrupt, truncated, 16-bit) up front, so
      // matching never meets a bad image half-way through a long run.
      const MatcherImage image = LoadMatcherImage(0, path);
      width = image.bgr.cols;
      height = image.bgr.rows;
    } catch (const std::exception& e) {
      if (options.strict) throw;
      std::cerr << "WARNING: skipping image: " << e.what() << std::endl;
      summary.skipped.push_back(name + ": " + e.what());
      continue;
    }
    Database::Transaction transaction(database);
    camera_t camera_id = shared_camera;
    if (camera_id != 0 && (shared_camera_data.width != width ||
                           shared_camera_data.height != height)) {
      const std::string msg =
          "Image '" + path + "' is " + std::to_string(width) + "x" +
          std::to_string(height) + " but the shared camera is " +
          std::to_string(shared_camera_data.width) + "x" +
          std::to_string(shared_camera_data.height) +
          " (single_camera needs one size)";
      if (options.strict) throw std::runtime_error(msg);
      std::cerr << "WARNING: skipping image: " << msg << std::endl;
      summary.skipped.push_back(name + ": " + msg);
      continue;
    }
    if (camera_id == 0) {
      const FocalFromExif exif = ReadExifFocal(path, width, height);
      DbCamera camera;
      camera.model_id = model_id;
      camera.width = width;
      camera.height = height;
      camera.prior_focal_length = exif.focal_px > 0;
      const double f = exif.focal_px > 0 ? exif.focal_px
                                         : options.default_focal_length_factor *
                                               std::max(width, height);
      if (exif.focal_px > 0) ++summary.num_exif_focal;
      camera.params = DefaultParams(model_id, f, width, height);
      camera_id = database->WriteCamera(camera);
      if (options.single_camera) {
        shared_camera = camera_id;
        shared_camera_data = camera;
      }
    }
    database->WriteImage({0, name, camera_id});
    transaction.Commit();
    ++summary.num_imported;
  }
  progress.Finish();
  if (summary.num_imported + summary.num_existing == 0) {
    throw std::runtime_error("No readable image in '" + image_dir + "' (" +
                             std::to_string(summary.skipped.size()) +
                             " skipped: " + summary.skipped.front() + ")");
  }
  return summary;
}

}  // namespace l2m
