#include "colmap_plugin/database.h"

#include <sqlite3.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace l2m {
namespace {

// The 3.8 DDL exactly as `colmap database_creator` (3.8-1) writes it.
const char* kCreateTablesSql = R"sql(
CREATE TABLE IF NOT EXISTS cameras (camera_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, model INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, params BLOB, prior_focal_length INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL UNIQUE, camera_id INTEGER NOT NULL, prior_qw REAL, prior_qx REAL, prior_qy REAL, prior_qz REAL, prior_tx REAL, prior_ty REAL, prior_tz REAL, CONSTRAINT image_id_check CHECK(image_id >= 0 and image_id < 2147483647), FOREIGN KEY(camera_id) REFERENCES cameras(camera_id));
CREATE UNIQUE INDEX IF NOT EXISTS index_name ON images(name);
CREATE TABLE IF NOT EXISTS keypoints (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, data BLOB, FOREIGN KEY(image_id) REFERENCES images(image_id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS descriptors (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, data BLOB, FOREIGN KEY(image_id) REFERENCES images(image_id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS matches (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, data BLOB);
CREATE TABLE IF NOT EXISTS two_view_geometries (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, data BLOB, config INTEGER NOT NULL, F BLOB, E BLOB, H BLOB, qvec BLOB, tvec BLOB);
CREATE TABLE IF NOT EXISTS l2m_raw_matches (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, data BLOB);
CREATE TABLE IF NOT EXISTS l2m_metadata (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
)sql";

// COLMAP 3.8 stamps its databases with user_version 3800; 3.10+ use larger
// values and a different images table that 3.8 cannot write into.
constexpr int kColmap38UserVersion = 3800;

const char* kRequiredTables[] = {"cameras",
                                 "images",
                                 "keypoints",
                                 "descriptors",
                                 "matches",
                                 "two_view_geometries"};

// Prepared statement with RAII finalisation.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() const { return stmt_; }
  operator sqlite3_stmt*() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

template <typename T>
std::vector<T> BlobToVector(sqlite3_stmt* stmt, int col) {
  const void* data = sqlite3_column_blob(stmt, col);
  const int bytes = sqlite3_column_bytes(stmt, col);
  std::vector<T> out(static_cast<size_t>(bytes) / sizeof(T));
  if (bytes > 0 && data != nullptr)
    std::memcpy(out.data(), data, out.size() * sizeof(T));
  return out;
}

void SwapColumns(std::vector<DbMatch>* matches) {
  for (auto& m : *matches) std::swap(m[0], m[1]);
}

}  // namespace

int CameraModelIdFromName(const std::string& name) {
  if (name == "SIMPLE_PINHOLE") return 0;
  if (name == "PINHOLE") return 1;
  if (name == "SIMPLE_RADIAL") return 2;
  if (name == "RADIAL") return 3;
  if (name == "OPENCV") return 4;
  return -1;
}

std::string CameraModelName(int model_id) {
  switch (model_id) {
    case 0:
      return "SIMPLE_PINHOLE";
    case 1:
      return "PINHOLE";
    case 2:
      return "SIMPLE_RADIAL";
    case 3:
      return "RADIAL";
    case 4:
      return "OPENCV";
    default:
      return "UNKNOWN(" + std::to_string(model_id) + ")";
  }
}

int CameraModelNumParams(int model_id) {
  switch (model_id) {
    case 0:
      return 3;
    case 1:
      return 4;
    case 2:
      return 4;
    case 3:
      return 5;
    case 4:
      return 8;
    default:
      return -1;
  }
}

Database::Database(const std::string& path, Mode mode) : path_(path) {
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && mode != Mode::kCreate) {
    throw std::runtime_error(
        "Database '" + path +
        "' does not exist (create it with `l2m database_create`)");
  }
  if (exists && !S_ISREG(st.st_mode)) {
    throw std::runtime_error("Database '" + path + "' is not a regular file");
  }
  // Mode bits as well as access(): root passes access() on a 0444 file, but
  // a user who made the file read-only means it.
  if (exists && mode != Mode::kReadOnly &&
      ((st.st_mode & S_IWUSR) == 0 || ::access(path.c_str(), W_OK) != 0)) {
    throw std::runtime_error("Database '" + path +
                             "' is read-only; l2m needs to write to it");
  }
  const int flags = mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY
                    : mode == Mode::kReadWrite
                        ? SQLITE_OPEN_READWRITE
                        : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string err =
        db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("Cannot open database '" + path + "': " + err);
  }
  sqlite3_busy_timeout(db_, 60000);
  if (mode != Mode::kReadOnly && sqlite3_db_readonly(db_, "main") == 1) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("Database '" + path +
                             "' is read-only; l2m needs to write to it");
  }
  try {
    // Forces SQLite to read the header: a non-database file fails here.
    QueryInt("SELECT COUNT(*) FROM sqlite_master");
    if (mode != Mode::kReadOnly) {
      // WAL + NORMAL: a killed process never leaves a half-written transaction.
      Exec("PRAGMA journal_mode=WAL");
      Exec("PRAGMA synchronous=NORMAL");
      Exec("PRAGMA foreign_keys=ON");
    }
    const bool empty =
        QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE type='table'") == 0;
    if (mode == Mode::kCreate && empty) {
      CreateTables();
    } else {
      CheckLayout();
      if (mode != Mode::kReadOnly) {
        // Our own tables may be missing in a database made by `colmap`.
        Exec(
            "CREATE TABLE IF NOT EXISTS l2m_raw_matches (pair_id INTEGER "
            "PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT "
            "NULL, data BLOB)");
        Exec(
            "CREATE TABLE IF NOT EXISTS l2m_metadata (key TEXT PRIMARY KEY NOT "
            "NULL, value TEXT NOT NULL)");
      }
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Database::~Database() {
  if (db_ != nullptr) sqlite3_close(db_);
}

void Database::Fail(const std::string& what) const {
  throw std::runtime_error("Database '" + path_ + "': " + what + ": " +
                           (db_ != nullptr ? sqlite3_errmsg(db_) : ""));
}

void Database::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("Database '" + path_ + "': " + msg +
                             " (in: " + sql.substr(0, 80) + ")");
  }
}

sqlite3_stmt* Database::Prepare(const std::string& sql) const {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    const int code = sqlite3_errcode(db_);
    if (code == SQLITE_NOTADB) {
      throw std::runtime_error("'" + path_ + "' is not an SQLite database");
    }
    Fail("cannot prepare '" + sql.substr(0, 60) + "'");
  }
  return stmt;
}

int64_t Database::QueryInt(const std::string& sql) const {
  Statement stmt(Prepare(sql));
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_NOTADB)
    throw std::runtime_error("'" + path_ + "' is not an SQLite database");
  if (rc != SQLITE_ROW) Fail("query failed");
  return sqlite3_column_int64(stmt, 0);
}

void Database::CreateTables() {
  Transaction transaction(this);
  Exec(kCreateTablesSql);
  Exec("PRAGMA user_version=" + std::to_string(kColmap38UserVersion));
  transaction.Commit();
}

void Database::CheckLayout() const {
  for (const char* table : kRequiredTables) {
    Statement stmt(Prepare(
        "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?"));
    sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
    sqlite3_step(stmt);
    if (sqlite3_column_int64(stmt, 0) == 0) {
      throw std::runtime_error("Database '" + path_ +
                               "' is not a COLMAP database (no table '" +
                               table + "')");
    }
  }
  // 3.10+ dropped images.prior_* (and 4.x added descriptors.type); 3.8 then
  // aborts on its own INSERT, so we refuse such a layout up front.
  const int64_t has_prior = QueryInt(
      "SELECT COUNT(*) FROM pragma_table_info('images') WHERE name='prior_qw'");
  const int64_t user_version = QueryInt("PRAGMA user_version");
  if (has_prior == 0 || user_version > kColmap38UserVersion) {
    throw std::runtime_error(
        "Database '" + path_ + "' has a newer COLMAP layout (user_version " +
        std::to_string(user_version) +
        "); l2m writes the COLMAP 3.8 layout that every COLMAP reads. Create a "
        "new database with `l2m database_create`.");
  }
}

Database::Transaction::Transaction(Database* database) : database_(database) {
  database_->Exec("BEGIN IMMEDIATE TRANSACTION");
}

Database::Transaction::~Transaction() {
  if (!done_) {
    try {
      database_->Exec("ROLLBACK");
    } catch (...) {
    }
  }
}

void Database::Transaction::Commit() {
  database_->Exec("COMMIT");
  done_ = true;
}

camera_t Database::WriteCamera(const DbCamera& camera) {
  Statement stmt(
      camera.camera_id == 0
          ? Prepare("INSERT INTO cameras(model, width, height, params, "
                    "prior_focal_length) VALUES(?, ?, ?, ?, ?)")
          : Prepare("INSERT INTO cameras(model, width, height, params, "
                    "prior_focal_length, camera_id) VALUES(?, ?, ?, ?, ?, ?)"));
  sqlite3_bind_int(stmt, 1, camera.model_id);
  sqlite3_bind_int(stmt, 2, camera.width);
  sqlite3_bind_int(stmt, 3, camera.height);
  sqlite3_bind_blob(stmt,
                    4,
                    camera.params.data(),
                    static_cast<int>(camera.params.size() * sizeof(double)),
                    SQLITE_TRANSIENT);
  sqlite3_bind_int(stmt, 5, camera.prior_focal_length ? 1 : 0);
  if (camera.camera_id != 0) sqlite3_bind_int64(stmt, 6, camera.camera_id);
  if (sqlite3_step(stmt) != SQLITE_DONE) Fail("cannot write camera");
  return static_cast<camera_t>(sqlite3_last_insert_rowid(db_));
}

std::vector<DbCamera> Database::ReadAllCameras() const {
  Statement stmt(
      Prepare("SELECT camera_id, model, width, height, params, "
              "prior_focal_length FROM cameras ORDER BY camera_id"));
  std::vector<DbCamera> cameras;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    DbCamera c;
    c.camera_id = static_cast<camera_t>(sqlite3_column_int64(stmt, 0));
    c.model_id = sqlite3_column_int(stmt, 1);
    c.width = sqlite3_column_int(stmt, 2);
    c.height = sqlite3_column_int(stmt, 3);
    c.params = BlobToVector<double>(stmt, 4);
    c.prior_focal_length = sqlite3_column_int(stmt, 5) != 0;
    cameras.push_back(std::move(c));
  }
  return cameras;
}

image_t Database::WriteImage(const DbImage& image) {
  Statement stmt(
      image.image_id == 0
          ? Prepare("INSERT INTO images(name, camera_id) VALUES(?, ?)")
          : Prepare("INSERT INTO images(name, camera_id, image_id) VALUES(?, "
                    "?, ?)"));
  sqlite3_bind_text(stmt, 1, image.name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 2, image.camera_id);
  if (image.image_id != 0) sqlite3_bind_int64(stmt, 3, image.image_id);
  if (sqlite3_step(stmt) != SQLITE_DONE)
    Fail("cannot write image '" + image.name + "'");
  return static_cast<image_t>(sqlite3_last_insert_rowid(db_));
}

std::vector<DbImage> Database::ReadAllImages() const {
  Statement stmt(Prepare(
      "SELECT image_id, name, camera_id FROM images ORDER BY image_id"));
  std::vector<DbImage> images;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    DbImage im;
    im.image_id = static_cast<image_t>(sqlite3_column_int64(stmt, 0));
    im.name = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
    im.camera_id = static_cast<camera_t>(sqlite3_column_int64(stmt, 2));
    images.push_back(std::move(im));
  }
  return images;
}

std::optional<DbImage> Database::ReadImageWithName(
    const std::string& name) const {
  Statement stmt(
      Prepare("SELECT image_id, name, camera_id FROM images WHERE name=?"));
  sqlite3_bind_text(stmt, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(stmt) != SQLITE_ROW) return std::nullopt;
  DbImage im;
  im.image_id = static_cast<image_t>(sqlite3_column_int64(stmt, 0));
  im.name = name;
  im.camera_id = static_cast<camera_t>(sqlite3_column_int64(stmt, 2));
  return im;
}

size_t Database::NumImages() const {
  return static_cast<size_t>(QueryInt("SELECT COUNT(*) FROM images"));
}

void Database::WriteKeypoints(image_t image_id,
                              const std::vector<DbKeypoint>& kps) {
  // COLMAP writes 6 columns (x, y, a11, a12, a21, a22); (scale, orientation)
  // map to the affine shape as in 3.8 FeatureKeypoint(x, y, scale,
  // orientation).
  std::vector<float> data;
  data.reserve(kps.size() * 6);
  for (const auto& kp : kps) {
    const float c = std::cos(kp.orientation), s = std::sin(kp.orientation);
    data.insert(
        data.end(),
        {kp.x, kp.y, kp.scale * c, -kp.scale * s, kp.scale * s, kp.scale * c});
  }
  Statement stmt(
      Prepare("INSERT OR REPLACE INTO keypoints(image_id, rows, cols, data) "
              "VALUES(?, ?, 6, ?)"));
  sqlite3_bind_int64(stmt, 1, image_id);
  sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(kps.size()));
  sqlite3_bind_blob(stmt,
                    3,
                    data.data(),
                    static_cast<int>(data.size() * sizeof(float)),
                    SQLITE_TRANSIENT);
  if (sqlite3_step(stmt) != SQLITE_DONE)
    Fail("cannot write keypoints of image " + std::to_string(image_id));
}

std::vector<DbKeypoint> Database::ReadKeypoints(image_t image_id) const {
  Statement stmt(
      Prepare("SELECT rows, cols, data FROM keypoints WHERE image_id=?"));
  sqlite3_bind_int64(stmt, 1, image_id);
  std::vector<DbKeypoint> kps;
  if (sqlite3_step(stmt) != SQLITE_ROW) return kps;
  const int64_t rows = sqlite3_column_int64(stmt, 0);
  const int64_t cols = sqlite3_column_int64(stmt, 1);
  const std::vector<float> data = BlobToVector<float>(stmt, 2);
  if ((cols != 2 && cols != 4 && cols != 6) ||
      static_cast<int64_t>(data.size()) != rows * cols) {
    throw std::runtime_error("Database '" + path_ + "': keypoints of image " +
                             std::to_string(image_id) + " are corrupt (" +
                             std::to_string(rows) + "x" + std::to_string(cols) +
                             ", " + std::to_string(data.size()) + " floats)");
  }
  kps.resize(rows);
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = &data[i * cols];
    kps[i].x = r[0];
    kps[i].y = r[1];
    if (cols == 4) {
      kps[i].scale = r[2];
      kps[i].orientation = r[3];
    } else if (cols == 6) {
      kps[i].scale = std::sqrt(r[2] * r[2] + r[4] * r[4]);
      kps[i].orientation = std::atan2(r[4], r[2]);
    }
  }
  return kps;
}

bool Database::ExistsKeypoints(image_t image_id) const {
  return QueryInt("SELECT COUNT(*) FROM keypoints WHERE image_id=" +
                  std::to_string(image_id)) > 0;
}

void Database::WriteDescriptors(image_t image_id,
                                int cols,
                                const std::vector<uint8_t>& data) {
  if (cols <= 0 || data.size() % cols != 0) {
    throw std::invalid_argument("descriptors of image " +
                                std::to_string(image_id) +
                                " are not a whole number of rows");
  }
  Statement stmt(
      Prepare("INSERT OR REPLACE INTO descriptors(image_id, rows, cols, data) "
              "VALUES(?, ?, ?, ?)"));
  sqlite3_bind_int64(stmt, 1, image_id);
  sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(data.size() / cols));
  sqlite3_bind_int(stmt, 3, cols);
  sqlite3_bind_blob(
      stmt, 4, data.data(), static_cast<int>(data.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(stmt) != SQLITE_DONE)
    Fail("cannot write descriptors of image " + std::to_string(image_id));
}

std::vector<uint8_t> Database::ReadDescriptors(image_t image_id,
                                               int* cols) const {
  Statement stmt(
      Prepare("SELECT rows, cols, data FROM descriptors WHERE image_id=?"));
  sqlite3_bind_int64(stmt, 1, image_id);
  *cols = 0;
  if (sqlite3_step(stmt) != SQLITE_ROW) return {};
  const int64_t rows = sqlite3_column_int64(stmt, 0);
  *cols = sqlite3_column_int(stmt, 1);
  std::vector<uint8_t> data = BlobToVector<uint8_t>(stmt, 2);
  if (static_cast<int64_t>(data.size()) != rows * *cols) {
    throw std::runtime_error("Database '" + path_ + "': descriptors of image " +
                             std::to_string(image_id) + " are corrupt");
  }
  return data;
}

bool Database::ExistsDescriptors(image_t image_id) const {
  return QueryInt("SELECT COUNT(*) FROM descriptors WHERE image_id=" +
                  std::to_string(image_id)) > 0;
}

namespace {

void BindMatchesBlob(sqlite3_stmt* stmt,
                     int col,
                     const std::vector<DbMatch>& matches) {
  sqlite3_bind_blob(stmt,
                    col,
                    matches.data(),
                    static_cast<int>(matches.size() * sizeof(DbMatch)),
                    SQLITE_TRANSIENT);
}

void BindMatrixOrNull(sqlite3_stmt* stmt,
                      int col,
                      const std::vector<double>& m) {
  if (m.size() == 9) {
    sqlite3_bind_blob(
        stmt, col, m.data(), 9 * sizeof(double), SQLITE_TRANSIENT);
  } else {
    sqlite3_bind_null(stmt, col);
  }
}

}  // namespace

void Database::WriteMatches(image_t image_id1,
                            image_t image_id2,
                            const std::vector<DbMatch>& matches) {
  std::vector<DbMatch> stored = matches;
  if (ShouldSwapImagePair(image_id1, image_id2)) SwapColumns(&stored);
  Statement stmt(
      Prepare("INSERT OR REPLACE INTO matches(pair_id, rows, cols, data) "
              "VALUES(?, ?, 2, ?)"));
  sqlite3_bind_int64(
      stmt, 1, static_cast<int64_t>(ImagePairToPairId(image_id1, image_id2)));
  sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(stored.size()));
  BindMatchesBlob(stmt, 3, stored);
  if (sqlite3_step(stmt) != SQLITE_DONE) Fail("cannot write matches");
}

std::vector<DbMatch> Database::ReadMatches(image_t image_id1,
                                           image_t image_id2) const {
  Statement stmt(
      Prepare("SELECT rows, cols, data FROM matches WHERE pair_id=?"));
  sqlite3_bind_int64(
      stmt, 1, static_cast<int64_t>(ImagePairToPairId(image_id1, image_id2)));
  if (sqlite3_step(stmt) != SQLITE_ROW) return {};
  std::vector<DbMatch> matches = BlobToVector<DbMatch>(stmt, 2);
  if (static_cast<int64_t>(matches.size()) != sqlite3_column_int64(stmt, 0) ||
      sqlite3_column_int(stmt, 1) != 2) {
    throw std::runtime_error("Database '" + path_ + "': matches of pair (" +
                             std::to_string(image_id1) + ", " +
                             std::to_string(image_id2) + ") are corrupt");
  }
  if (ShouldSwapImagePair(image_id1, image_id2)) SwapColumns(&matches);
  return matches;
}

bool Database::ExistsMatches(image_t image_id1, image_t image_id2) const {
  return QueryInt("SELECT COUNT(*) FROM matches WHERE pair_id=" +
                  std::to_string(ImagePairToPairId(image_id1, image_id2))) > 0;
}

std::vector<image_pair_t> Database::ReadMatchedPairIds() const {
  Statement stmt(Prepare("SELECT pair_id FROM matches ORDER BY pair_id"));
  std::vector<image_pair_t> ids;
  while (sqlite3_step(stmt) == SQLITE_ROW)
    ids.push_back(static_cast<image_pair_t>(sqlite3_column_int64(stmt, 0)));
  return ids;
}

void Database::WriteTwoViewGeometry(image_t image_id1,
                                    image_t image_id2,
                                    const DbTwoViewGeometry& geometry) {
  DbTwoViewGeometry g = geometry;
  if (ShouldSwapImagePair(image_id1, image_id2)) {
    // COLMAP's TwoViewGeometry::Invert(): F and E transpose, H inverts. We
    // only ever store F/E (or nothing); an H would need inverting.
    SwapColumns(&g.inlier_matches);
    auto transpose = [](std::vector<double>* m) {
      if (m->size() == 9) {
        std::swap((*m)[1], (*m)[3]);
        std::swap((*m)[2], (*m)[6]);
        std::swap((*m)[5], (*m)[7]);
      }
    };
    transpose(&g.F);
    transpose(&g.E);
    g.H.clear();
  }
  Statement stmt(
      Prepare("INSERT OR REPLACE INTO two_view_geometries(pair_id, rows, cols, "
              "data, config, F, E, H, qvec, tvec) "
              "VALUES(?, ?, 2, ?, ?, ?, ?, ?, NULL, NULL)"));
  sqlite3_bind_int64(
      stmt, 1, static_cast<int64_t>(ImagePairToPairId(image_id1, image_id2)));
  sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(g.inlier_matches.size()));
  BindMatchesBlob(stmt, 3, g.inlier_matches);
  sqlite3_bind_int(stmt, 4, g.config);
  BindMatrixOrNull(stmt, 5, g.F);
  BindMatrixOrNull(stmt, 6, g.E);
  BindMatrixOrNull(stmt, 7, g.H);
  if (sqlite3_step(stmt) != SQLITE_DONE) Fail("cannot write two-view geometry");
}

DbTwoViewGeometry Database::ReadTwoViewGeometry(image_t image_id1,
                                                image_t image_id2) const {
  Statement stmt(Prepare(
      "SELECT data, config, F, E, H FROM two_view_geometries WHERE pair_id=?"));
  sqlite3_bind_int64(
      stmt, 1, static_cast<int64_t>(ImagePairToPairId(image_id1, image_id2)));
  DbTwoViewGeometry g;
  if (sqlite3_step(stmt) != SQLITE_ROW) return g;
  g.inlier_matches = BlobToVector<DbMatch>(stmt, 0);
  g.config = sqlite3_column_int(stmt, 1);
  g.F = BlobToVector<double>(stmt, 2);
  g.E = BlobToVector<double>(stmt, 3);
  g.H = BlobToVector<double>(stmt, 4);
  if (ShouldSwapImagePair(image_id1, image_id2)) SwapColumns(&g.inlier_matches);
  return g;
}

bool Database::ExistsTwoViewGeometry(image_t image_id1,
                                     image_t image_id2) const {
  return QueryInt("SELECT COUNT(*) FROM two_view_geometries WHERE pair_id=" +
                  std::to_string(ImagePairToPairId(image_id1, image_id2))) > 0;
}

size_t Database::NumVerifiedPairs(size_t min_num_inliers) const {
  return static_cast<size_t>(
      QueryInt("SELECT COUNT(*) FROM two_view_geometries WHERE rows >= " +
               std::to_string(min_num_inliers)));
}

void Database::WriteRawMatches(image_t image_id1,
                               image_t image_id2,
                               const RawPairMatches& matches) {
  const size_t n = matches.size();
  if (matches.xy1.size() != 2 * n || matches.xy2.size() != 2 * n) {
    throw std::invalid_argument("raw matches: xy1/xy2/scores sizes disagree");
  }
  const bool swap = ShouldSwapImagePair(image_id1, image_id2);
  std::vector<float> data(5 * n);
  for (size_t i = 0; i < n; ++i) {
    const float* a = swap ? &matches.xy2[2 * i] : &matches.xy1[2 * i];
    const float* b = swap ? &matches.xy1[2 * i] : &matches.xy2[2 * i];
    data[5 * i + 0] = a[0];
    data[5 * i + 1] = a[1];
    data[5 * i + 2] = b[0];
    data[5 * i + 3] = b[1];
    data[5 * i + 4] = matches.scores[i];
  }
  Statement stmt(
      Prepare("INSERT OR REPLACE INTO l2m_raw_matches(pair_id, rows, cols, "
              "data) VALUES(?, ?, 5, ?)"));
  sqlite3_bind_int64(
      stmt, 1, static_cast<int64_t>(ImagePairToPairId(image_id1, image_id2)));
  sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(n));
  sqlite3_bind_blob(stmt,
                    3,
                    data.data(),
                    static_cast<int>(data.size() * sizeof(float)),
                    SQLITE_TRANSIENT);
  if (sqlite3_step(stmt) != SQLITE_DONE) Fail("cannot write raw matches");
}

RawPairMatches Database::ReadRawMatches(image_t image_id1,
                                        image_t image_id2) const {
  Statement stmt(
      Prepare("SELECT rows, cols, data FROM l2m_raw_matches WHERE pair_id=?"));
  sqlite3_bind_int64(
      stmt, 1, static_cast<int64_t>(ImagePairToPairId(image_id1, image_id2)));
  RawPairMatches out;
  if (sqlite3_step(stmt) != SQLITE_ROW) return out;
  const int64_t rows = sqlite3_column_int64(stmt, 0);
  const std::vector<float> data = BlobToVector<float>(stmt, 2);
  if (sqlite3_column_int(stmt, 1) != 5 ||
      static_cast<int64_t>(data.size()) != 5 * rows) {
    throw std::runtime_error("Database '" + path_ + "': raw matches of pair (" +
                             std::to_string(image_id1) + ", " +
                             std::to_string(image_id2) + ") are corrupt");
  }
  const bool swap = ShouldSwapImagePair(image_id1, image_id2);
  out.xy1.resize(2 * rows);
  out.xy2.resize(2 * rows);
  out.scores.resize(rows);
  for (int64_t i = 0; i < rows; ++i) {
    float* a = swap ? &out.xy2[2 * i] : &out.xy1[2 * i];
    float* b = swap ? &out.xy1[2 * i] : &out.xy2[2 * i];
    a[0] = data[5 * i + 0];
    a[1] = data[5 * i + 1];
    b[0] = data[5 * i + 2];
    b[1] = data[5 * i + 3];
    out.scores[i] = data[5 * i + 4];
  }
  return out;
}

bool Database::ExistsRawMatches(image_t image_id1, image_t image_id2) const {
  return QueryInt("SELECT COUNT(*) FROM l2m_raw_matches WHERE pair_id=" +
                  std::to_string(ImagePairToPairId(image_id1, image_id2))) > 0;
}

std::vector<image_pair_t> Database::ReadRawMatchPairIds() const {
  Statement stmt(
      Prepare("SELECT pair_id FROM l2m_raw_matches ORDER BY pair_id"));
  std::vector<image_pair_t> ids;
  while (sqlite3_step(stmt) == SQLITE_ROW)
    ids.push_back(static_cast<image_pair_t>(sqlite3_column_int64(stmt, 0)));
  return ids;
}

void Database::WriteMetadata(const std::string& key, const std::string& value) {
  Statement stmt(
      Prepare("INSERT OR REPLACE INTO l2m_metadata(key, value) VALUES(?, ?)"));
  sqlite3_bind_text(stmt, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt, 2, value.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(stmt) != SQLITE_DONE) Fail("cannot write metadata");
}

std::optional<std::string> Database::ReadMetadata(
    const std::string& key) const {
  if (QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND "
               "name='l2m_metadata'") == 0) {
    return std::nullopt;
  }
  Statement stmt(Prepare("SELECT value FROM l2m_metadata WHERE key=?"));
  sqlite3_bind_text(stmt, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(stmt) != SQLITE_ROW) return std::nullopt;
  return std::string(
      reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
}

void Database::ClearKeypointsAndMatches() {
  Exec(
      "DELETE FROM keypoints; DELETE FROM descriptors; DELETE FROM matches; "
      "DELETE FROM two_view_geometries;");
}

void Database::ClearTwoViewGeometries() {
  Exec("DELETE FROM two_view_geometries");
}

}  // namespace l2m
