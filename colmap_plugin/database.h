#pragma once

// The COLMAP database in the 3.8 layout (readable by COLMAP 3.8, migrated by
// 4.x), plus one table of our own for raw per-pair dense matches.
//
// Every write method is one SQL statement; callers group writes that belong
// together (a pair's matches, an image's keypoints) in a Transaction so that
// a killed process leaves either all of it or none of it.

#include "colmap_plugin/types.h"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace l2m {

// COLMAP camera model ids (3.8 src/base/camera_models.h).
enum class CameraModelId : int {
  kSimplePinhole = 0,
  kPinhole = 1,
  kSimpleRadial = 2,
  kRadial = 3,
  kOpenCV = 4,
};
int CameraModelIdFromName(const std::string& name);  // -1 if unknown.
std::string CameraModelName(int model_id);
int CameraModelNumParams(int model_id);

struct DbCamera {
  camera_t camera_id = 0;
  int model_id = static_cast<int>(CameraModelId::kSimpleRadial);
  int width = 0;
  int height = 0;
  std::vector<double> params;
  bool prior_focal_length = false;
};

struct DbImage {
  image_t image_id = 0;
  std::string name;  // Path relative to the image folder, '/' separated.
  camera_t camera_id = 0;
};

struct DbKeypoint {
  float x = 0;  // COLMAP pixels (top-left pixel centre = 0.5, 0.5).
  float y = 0;
  float scale = 1;
  float orientation = 0;
};

typedef std::array<point2D_t, 2> DbMatch;  // (index in image1, index in image2)

// COLMAP TwoViewGeometry::ConfigurationType.
enum class TwoViewConfig : int {
  kUndefined = 0,
  kDegenerate = 1,
  kCalibrated = 2,
  kUncalibrated = 3,
  kPlanar = 4,
  kPanoramic = 5,
  kPlanarOrPanoramic = 6,
  kWatermark = 7,
  kMultiple = 8,
};

struct DbTwoViewGeometry {
  int config = static_cast<int>(TwoViewConfig::kUndefined);
  std::vector<DbMatch> inlier_matches;
  // Row-major 3x3; empty = unset (stored as NULL, which 3.8 reads as zeros).
  std::vector<double> F, E, H;
};

// Raw matches of one pair as a matcher produced them (COLMAP pixels).
struct RawPairMatches {
  std::vector<float> xy1;     // 2N
  std::vector<float> xy2;     // 2N
  std::vector<float> scores;  // N
  size_t size() const { return scores.size(); }
  void Add(float x1, float y1, float x2, float y2, float score) {
    xy1.insert(xy1.end(), {x1, y1});
    xy2.insert(xy2.end(), {x2, y2});
    scores.push_back(score);
  }
};

class Database {
 public:
  enum class Mode { kReadOnly, kReadWrite, kCreate };

  // kCreate creates the file and the 3.8 tables if missing; kReadWrite and
  // kReadOnly require an existing COLMAP database. Throws std::runtime_error
  // naming the file for: not an SQLite file, a foreign schema, a newer
  // COLMAP layout, or a read-only file opened for writing.
  Database(const std::string& path, Mode mode);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }

  // RAII transaction: commits on Commit(), rolls back otherwise.
  class Transaction {
   public:
    explicit Transaction(Database* database);
    ~Transaction();
    void Commit();

   private:
    Database* database_;
    bool done_ = false;
  };

  // Cameras and images.
  camera_t WriteCamera(const DbCamera& camera);
  std::vector<DbCamera> ReadAllCameras() const;
  image_t WriteImage(const DbImage& image);  // image_id 0 = auto.
  std::vector<DbImage> ReadAllImages() const;
  std::optional<DbImage> ReadImageWithName(const std::string& name) const;
  size_t NumImages() const;

  // Keypoints (written with 6 columns, as COLMAP writes them) and descriptors.
  void WriteKeypoints(image_t image_id, const std::vector<DbKeypoint>& kps);
  std::vector<DbKeypoint> ReadKeypoints(image_t image_id) const;
  bool ExistsKeypoints(image_t image_id) const;
  void WriteDescriptors(image_t image_id,
                        int cols,
                        const std::vector<uint8_t>& data);
  std::vector<uint8_t> ReadDescriptors(image_t image_id, int* cols) const;
  bool ExistsDescriptors(image_t image_id) const;

  // Matches: indices refer to (image_id1, image_id2) as passed in; storage
  // follows COLMAP (smaller id first, columns swapped when needed).
  void WriteMatches(image_t image_id1,
                    image_t image_id2,
                    const std::vector<DbMatch>& matches);
  std::vector<DbMatch> ReadMatches(image_t image_id1, image_t image_id2) const;
  bool ExistsMatches(image_t image_id1, image_t image_id2) const;
  std::vector<image_pair_t> ReadMatchedPairIds() const;

  void WriteTwoViewGeometry(image_t image_id1,
                            image_t image_id2,
                            const DbTwoViewGeometry& geometry);
  DbTwoViewGeometry ReadTwoViewGeometry(image_t image_id1,
                                        image_t image_id2) const;
  bool ExistsTwoViewGeometry(image_t image_id1, image_t image_id2) const;
  size_t NumVerifiedPairs(size_t min_num_inliers = 1) const;

  // Raw per-pair matches (table l2m_raw_matches; COLMAP ignores it).
  void WriteRawMatches(image_t image_id1,
                       image_t image_id2,
                       const RawPairMatches& matches);
  RawPairMatches ReadRawMatches(image_t image_id1, image_t image_id2) const;
  bool ExistsRawMatches(image_t image_id1, image_t image_id2) const;
  std::vector<image_pair_t> ReadRawMatchPairIds() const;

  // Small key/value store of our own (table l2m_metadata).
  void WriteMetadata(const std::string& key, const std::string& value);
  std::optional<std::string> ReadMetadata(const std::string& key) const;

  // Deletes derived data (keypoints+descriptors, matches, geometries).
  void ClearKeypointsAndMatches();
  void ClearTwoViewGeometries();

  // Low-level helpers (also for tests).
  void Exec(const std::string& sql);
  int64_t QueryInt(const std::string& sql) const;

 private:
  void CreateTables();
  void CheckLayout() const;
  sqlite3_stmt* Prepare(const std::string& sql) const;
  [[noreturn]] void Fail(const std::string& what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace l2m
