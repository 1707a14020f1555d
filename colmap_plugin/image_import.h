#pragma once

// Photos folder -> images + cameras in a COLMAP database.
//
// Focal length prior, in this order (what a user's camera tells us):
//   1. EXIF FocalLengthIn35mmFilm: f_px = f35 / 36 * max(W, H);
//   2. EXIF FocalLength (mm) with FocalPlaneXResolution (+ unit): f_px =
//      f_mm * pixels_per_mm (scaled if the image was resized after capture);
//   3. otherwise f_px = default_focal_length_factor * max(W, H) (COLMAP's
//      default 1.2), and the camera is marked as having no focal prior.

#include "colmap_plugin/database.h"

#include <optional>
#include <string>
#include <vector>

namespace l2m {

struct ImageImportOptions {
  // Camera model for new cameras (SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL,
  // RADIAL, OPENCV).
  std::string camera_model = "SIMPLE_RADIAL";
  // One camera shared by all images (same size required) instead of one each.
  bool single_camera = false;
  double default_focal_length_factor = 1.2;
  // Fail on the first unreadable or unsupported image instead of skipping it.
  bool strict = false;

  bool Check(std::string* error) const;
};

struct FocalFromExif {
  double focal_px = 0;
  std::string source;  // "exif_35mm", "exif_focal_plane", or "" if none.
};

// Reads the EXIF focal length of a JPEG/TIFF file; focal_px = 0 when absent.
FocalFromExif ReadExifFocal(const std::string& path, int width, int height);

// Image files under `image_dir` (recursively, by extension), as names
// relative to it ('/' separated), sorted.
std::vector<std::string> ListImageFiles(const std::string& image_dir);

struct ImageImportSummary {
  int num_found = 0;
  int num_imported = 0;
  int num_existing = 0;  // Already in the database (resumed import).
  std::vector<std::string> skipped;  // "name: reason"
  int num_exif_focal = 0;
};

// Adds every readable image of `image_dir` that is not in the database yet.
// Throws std::runtime_error for an empty or missing folder, and for a bad
// image when options.strict is set.
ImageImportSummary ImportImages(const std::string& image_dir,
                                const ImageImportOptions& options,
                                Database* database);

}  // namespace l2m
