#include "colmap_plugin/sharding.h"

#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "l2m_core/util/string.h"
#include "matcher_adapters/image_io.h"

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <numeric>
#include <random>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

namespace l2m {
namespace {

namespace fs = std::filesystem;

constexpr const char* kShardFormat = "l2m-shard-1";
constexpr const char* kPlanFormat = "l2m-plan-1";
constexpr int kRawCols = 5;  // x1, y1, x2, y2, score (as l2m_raw_matches).

// FNV-1a, 64 bit: a checksum that every platform computes the same way.
class Fnv64 {
 public:
  void Add(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) {
      hash_ ^= p[i];
      hash_ *= 1099511628211ull;
    }
  }
  void AddInt(int64_t v) {
    uint8_t bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(v >> (8 * i));
    Add(bytes, 8);
  }
  void AddString(const std::string& s) {
    AddInt(static_cast<int64_t>(s.size()));
    Add(s.data(), s.size());
  }
  std::string Hex() const {
    char buf[17];
    std::snprintf(
        buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(hash_));
    return buf;
  }

 private:
  uint64_t hash_ = 14695981039346656037ull;
};

// An SQLite connection of our own (chunk files are not COLMAP databases).
class SqliteFile {
 public:
  SqliteFile(const std::string& path, int flags, const std::string& what)
      : path_(path), what_(what) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      const std::string err = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw std::runtime_error(what_ + " '" + path +
                               "' cannot be opened: " + err);
    }
    sqlite3_busy_timeout(db_, 60000);
  }
  ~SqliteFile() { Close(); }
  void Close() {
    if (db_ != nullptr) sqlite3_close(db_);
    db_ = nullptr;
  }
  sqlite3* get() const { return db_; }
  [[noreturn]] void Fail(const std::string& context) const {
    throw std::runtime_error(what_ + " '" + path_ + "' " + context + ": " +
                             sqlite3_errmsg(db_));
  }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw std::runtime_error(what_ + " '" + path_ + "': " + msg);
    }
  }
  sqlite3_stmt* Prepare(const std::string& sql) const {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK)
      Fail("is unreadable (" + sql.substr(0, 40) + ")");
    return stmt;
  }

 private:
  std::string path_, what_;
  sqlite3* db_ = nullptr;
};

struct StmtGuard {
  sqlite3_stmt* stmt;
  ~StmtGuard() { sqlite3_finalize(stmt); }
};

std::string ChunkFileName(int64_t chunk) {
  char buf[32];
  std::snprintf(
      buf, sizeof(buf), "chunk-%06lld.db", static_cast<long long>(chunk));
  return buf;
}

std::string HostName() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "host";
  std::string name = buf;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') c = '_';
  return name;
}

void FsyncPath(const std::string& path, bool directory) {
  const int fd =
      ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Plan identity: chunk size, images (id, name) and pairs.
std::string PlanId(int64_t chunk_size,
                   const std::vector<DbImage>& images,
                   const std::vector<ImagePair>& pairs) {
  Fnv64 h;
  h.AddString(kPlanFormat);
  h.AddInt(chunk_size);
  h.AddInt(static_cast<int64_t>(images.size()));
  for (const auto& im : images) {
    h.AddInt(im.image_id);
    h.AddString(im.name);
  }
  h.AddInt(static_cast<int64_t>(pairs.size()));
  for (const auto& p : pairs) {
    h.AddInt(p.first);
    h.AddInt(p.second);
  }
  return h.Hex();
}

std::string PairsBinPath(const std::string& plan_path) {
  return plan_path + "/pairs.bin";
}
std::string ImagesTsvPath(const std::string& plan_path) {
  return plan_path + "/images.tsv";
}
std::string PlanJsonPath(const std::string& plan_path) {
  return plan_path + "/plan.json";
}

std::vector<fs::path> ChunkFilesIn(const std::string& shards_dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(shards_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (StartsWith(name, "chunk-")) files.push_back(e.path());
  }
  return files;
}

// Small LRU cache keyed by image id.
template <typename T>
class LruCache {
 public:
  explicit LruCache(size_t capacity)
      : capacity_(std::max<size_t>(capacity, 2)) {}
  template <typename Make>
  const T& Get(image_t id, Make make) {
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
    T value = make();
    if (entries_.size() >= capacity_) {
      entries_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(id);
    return entries_
        .emplace(id, std::make_pair(std::move(value), order_.begin()))
        .first->second.first;
  }

 private:
  size_t capacity_;
  std::list<image_t> order_;
  std::unordered_map<image_t, std::pair<T, std::list<image_t>::iterator>>
      entries_;
};

// Keeps the `max_num` highest-scoring matches (ties: earlier first), in their
// original order.
void CapMatches(PairMatches* m, int max_num) {
  if (max_num <= 0 || m->size() <= static_cast<size_t>(max_num)) return;
  std::vector<size_t> order(m->size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return m->scores[a] > m->scores[b];
  });
  order.resize(max_num);
  std::sort(order.begin(), order.end());
  PairMatches kept;
  for (size_t i : order)
    kept.Add(m->xy1[2 * i],
             m->xy1[2 * i + 1],
             m->xy2[2 * i],
             m->xy2[2 * i + 1],
             m->scores[i]);
  *m = std::move(kept);
}

// Reads the header of an SQLite file and checks that its length is what the
// header says (a truncated copy is caught before SQLite reads garbage).
void CheckSqliteLength(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("Shard '" + path + "' cannot be read");
  unsigned char header[100];
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  if (in.gcount() < static_cast<std::streamsize>(sizeof(header)) ||
      std::memcmp(header, "SQLite format 3", 16) != 0) {
    throw std::runtime_error("Shard '" + path +
                             "' is not an SQLite file (truncated or foreign; "
                             "delete it and match its chunk again)");
  }
  int64_t page_size = (header[16] << 8) | header[17];
  if (page_size == 1) page_size = 65536;
  const int64_t pages = (int64_t{header[28]} << 24) | (header[29] << 16) |
                        (header[30] << 8) | header[31];
  const int64_t expected = page_size * pages;
  const int64_t actual = static_cast<int64_t>(fs::file_size(path));
  if (pages > 0 && actual != expected) {
    throw std::runtime_error(
        "Shard '" + path + "' is truncated or damaged: " +
        std::to_string(actual) + " bytes, its header says " +
        std::to_string(expected) + " (delete it and match its chunk again)");
  }
}

std::vector<std::string> ReadTsvLineFields(const std::string& line) {
  const size_t tab = line.find('\t');
  if (tab == std::string::npos) return {};
  return {line.substr(0, tab), line.substr(tab + 1)};
}

}  // namespace

bool PlanOptions::Check(std::string* error) const {
  if (chunk_size < 1 || block_size < 1) {
    *error = "Plan.chunk_size and Plan.block_size must be >= 1";
    return false;
  }
  return true;
}

bool ShardMatchOptions::Check(std::string* error) const {
  if (max_num_matches < 0) {
    *error = "max_num_matches must be >= 0";
    return false;
  }
  if (image_cache_size < 2 || feature_cache_size < 2) {
    *error = "image_cache_size and feature_cache_size must be >= 2";
    return false;
  }
  if (jitter_px < 0) {
    *error = "jitter_px must be >= 0";
    return false;
  }
  return true;
}

std::string MatchPlan::ChunkPath(int64_t chunk) const {
  return plan_path + "/shards/" + ChunkFileName(chunk);
}

std::vector<int64_t> MatchPlan::ChunksOfShard(const ShardSpec& shard) const {
  std::vector<int64_t> chunks;
  const int64_t begin = num_chunks * shard.index / shard.count;
  const int64_t end = num_chunks * (shard.index + 1) / shard.count;
  for (int64_t c = begin; c < end; ++c) chunks.push_back(c);
  return chunks;
}

void SortPairsByImageBlocks(const std::vector<DbImage>& images,
                            int block_size,
                            std::vector<ImagePair>* pairs) {
  std::vector<image_t> ids;
  for (const auto& im : images) ids.push_back(im.image_id);
  std::sort(ids.begin(), ids.end());
  std::unordered_map<image_t, int64_t> block;
  for (size_t i = 0; i < ids.size(); ++i)
    block[ids[i]] = static_cast<int64_t>(i) / std::max(block_size, 1);
  auto key = [&](const ImagePair& p) {
    auto b1 = block.find(p.first), b2 = block.find(p.second);
    if (b1 == block.end() || b2 == block.end())
      throw std::invalid_argument(
          "pair names an image that is not in the "
          "database");
    return std::make_tuple(b1->second, b2->second, p.first, p.second);
  };
  std::sort(
      pairs->begin(),
      pairs->end(),
      [&](const ImagePair& a, const ImagePair& b) { return key(a) < key(b); });
}

MatchPlan WritePlan(const std::string& plan_path,
                    const Database& database,
                    const std::string& image_path,
                    std::vector<ImagePair> pairs,
                    const PlanOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  NormalizePairs(&pairs);
  if (pairs.empty())
    throw std::runtime_error("Plan '" + plan_path + "': no pairs to match");
  const std::vector<DbImage> images = database.ReadAllImages();
  for (const auto& im : images) {
    if (im.name.find_first_of("\t\n\r") != std::string::npos) {
      throw std::runtime_error("Image name '" + im.name +
                               "' contains a tab or newline; rename it");
    }
  }
  MatchPlan plan;
  plan.plan_path = fs::absolute(plan_path).lexically_normal().string();
  plan.database_path =
      fs::absolute(database.path()).lexically_normal().string();
  plan.image_path = fs::absolute(image_path).lexically_normal().string();
  plan.num_images = static_cast<int64_t>(images.size());
  plan.num_pairs = static_cast<int64_t>(pairs.size());
  plan.chunk_size = options.chunk_size;
  plan.num_chunks = (plan.num_pairs + plan.chunk_size - 1) / plan.chunk_size;
  SortPairsByImageBlocks(images, options.block_size, &pairs);
  plan.plan_id = PlanId(plan.chunk_size, images, pairs);

  const std::string shards_dir = plan.plan_path + "/shards";
  if (FileExists(PlanJsonPath(plan.plan_path))) {
    MatchPlan old;
    try {
      old = ReadPlan(plan.plan_path);
    } catch (const std::exception&) {
      old.plan_id = "";  // A damaged plan: replace it.
    }
    if (old.plan_id == plan.plan_id) return old;  // Nothing to do.
    const auto existing = ChunkFilesIn(shards_dir);
    if (!existing.empty()) {
      if (!options.overwrite) {
        throw std::runtime_error(
            "Plan '" + plan.plan_path + "' already holds another plan (" +
            old.plan_id + ") with " + std::to_string(existing.size()) +
            " chunk files; use a new plan folder, or --Plan.overwrite 1 to "
            "delete them");
      }
      for (const auto& f : existing) fs::remove(f);
    }
  }
  fs::create_directories(shards_dir);

  std::string bin(pairs.size() * 8, '\0');
  for (size_t i = 0; i < pairs.size(); ++i) {
    const uint32_t v[2] = {pairs[i].first, pairs[i].second};
    for (int k = 0; k < 2; ++k)
      for (int b = 0; b < 4; ++b)
        bin[8 * i + 4 * k + b] = static_cast<char>((v[k] >> (8 * b)) & 0xff);
  }
  WriteFileAtomic(PairsBinPath(plan.plan_path), bin);
  std::ostringstream tsv;
  for (const auto& im : images) tsv << im.image_id << '\t' << im.name << '\n';
  WriteFileAtomic(ImagesTsvPath(plan.plan_path), tsv.str());

  nlohmann::ordered_json j;
  j["format"] = kPlanFormat;
  j["plan_id"] = plan.plan_id;
  j["database_path"] = plan.database_path;
  j["image_path"] = plan.image_path;
  j["num_images"] = plan.num_images;
  j["num_pairs"] = plan.num_pairs;
  j["chunk_size"] = plan.chunk_size;
  j["num_chunks"] = plan.num_chunks;
  j["pairs_file"] = "pairs.bin";
  j["images_file"] = "images.tsv";
  WriteFileAtomic(PlanJsonPath(plan.plan_path), j.dump(2) + "\n");
  return plan;
}

MatchPlan ReadPlan(const std::string& plan_path) {
  const std::string abs = fs::absolute(plan_path).lexically_normal().string();
  const std::string json_path = PlanJsonPath(abs);
  if (!FileExists(json_path)) {
    throw std::runtime_error("Plan '" + plan_path +
                             "' has no plan.json (run `l2m plan` first)");
  }
  MatchPlan plan;
  try {
    const auto j = nlohmann::json::parse(ReadBinaryFile(json_path));
    if (j.at("format").get<std::string>() != kPlanFormat)
      throw std::runtime_error("unknown format");
    plan.plan_id = j.at("plan_id").get<std::string>();
    plan.database_path = j.at("database_path").get<std::string>();
    plan.image_path = j.at("image_path").get<std::string>();
    plan.num_images = j.at("num_images").get<int64_t>();
    plan.num_pairs = j.at("num_pairs").get<int64_t>();
    plan.chunk_size = j.at("chunk_size").get<int64_t>();
    plan.num_chunks = j.at("num_chunks").get<int64_t>();
  } catch (const std::exception& e) {
    throw std::runtime_error("Plan file '" + json_path +
                             "' is damaged: " + e.what());
  }
  plan.plan_path = abs;
  if (plan.chunk_size < 1 || plan.num_pairs < 1 ||
      plan.num_chunks !=
          (plan.num_pairs + plan.chunk_size - 1) / plan.chunk_size) {
    throw std::runtime_error("Plan file '" + json_path +
                             "' is inconsistent (pairs/chunks)");
  }
  const std::string bin = PairsBinPath(abs);
  if (!FileExists(bin) ||
      static_cast<int64_t>(fs::file_size(bin)) != 8 * plan.num_pairs) {
    throw std::runtime_error("Plan '" + plan_path + "': pairs.bin is missing " +
                             "or does not hold " +
                             std::to_string(plan.num_pairs) +
                             " pairs (rerun `l2m plan`)");
  }
  if (!FileExists(ImagesTsvPath(abs))) {
    throw std::runtime_error("Plan '" + plan_path +
                             "': images.tsv is missing (rerun `l2m plan`)");
  }
  return plan;
}

std::vector<ImagePair> ReadPlanPairs(const MatchPlan& plan,
                                     int64_t begin,
                                     int64_t end) {
  begin = std::max<int64_t>(0, begin);
  end = std::min(end, plan.num_pairs);
  std::vector<ImagePair> pairs;
  if (end <= begin) return pairs;
  const std::string path = PairsBinPath(plan.plan_path);
  std::ifstream in(path, std::ios::binary);
  in.seekg(begin * 8);
  std::string bytes(static_cast<size_t>(end - begin) * 8, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw std::runtime_error("Plan file '" + path + "' is truncated");
  pairs.resize(end - begin);
  for (size_t i = 0; i < pairs.size(); ++i) {
    uint32_t v[2] = {0, 0};
    for (int k = 0; k < 2; ++k)
      for (int b = 0; b < 4; ++b)
        v[k] |= uint32_t{static_cast<uint8_t>(bytes[8 * i + 4 * k + b])}
                << (8 * b);
    pairs[i] = {v[0], v[1]};
  }
  return pairs;
}

std::vector<DbImage> ReadPlanImages(const MatchPlan& plan) {
  const std::string path = ImagesTsvPath(plan.plan_path);
  std::ifstream in(path);
  if (!in) throw std::runtime_error("Cannot read plan file '" + path + "'");
  std::vector<DbImage> images;
  std::string line;
  while (std::getline(in, line)) {
    const auto f = ReadTsvLineFields(line);
    if (f.size() != 2)
      throw std::runtime_error("Plan file '" + path + "' is damaged");
    images.push_back({static_cast<image_t>(std::stoul(f[0])), f[1], 0});
  }
  if (static_cast<int64_t>(images.size()) != plan.num_images) {
    throw std::runtime_error(
        "Plan file '" + path + "' holds " + std::to_string(images.size()) +
        " images, plan.json says " + std::to_string(plan.num_images));
  }
  return images;
}

std::string ShardMatcherKey(const Matcher& matcher) {
  return matcher.Name() + (matcher.IsDense() ? "" : "/as_dense");
}

namespace {

// Writes one chunk: a fresh SQLite file under a temporary name, then fsync
// and rename. Returns the number of matches.
int64_t WriteChunkFile(
    const MatchPlan& plan,
    int64_t chunk,
    const std::vector<ImagePair>& pairs,
    const std::string& matcher_key,
    const std::function<PairMatches(const ImagePair&)>& match,
    const std::function<void()>& on_pair) {
  const std::string path = plan.ChunkPath(chunk);
  const std::string tmp =
      path + ".tmp." + HostName() + "." + std::to_string(::getpid());
  fs::remove(tmp);
  int64_t num_matches = 0;
  try {
    SqliteFile db(
        tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "Shard (temporary)");
    // No journal: the file is only ever seen complete, under its final name.
    db.Exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;");
    db.Exec(
        "CREATE TABLE l2m_shard (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT "
        "NULL);"
        "CREATE TABLE l2m_raw_matches (pair_id INTEGER PRIMARY KEY NOT NULL, "
        "rows INTEGER NOT NULL, cols INTEGER NOT NULL, data BLOB);"
        "BEGIN;");
    StmtGuard insert{db.Prepare(
        "INSERT INTO l2m_raw_matches(pair_id, rows, cols, data) VALUES(?, ?, "
        "?, ?)")};
    Fnv64 digest;
    std::vector<float> data;
    for (const auto& pair : pairs) {
      const PairMatches m = match(pair);
      const size_t n = m.size();
      data.resize(kRawCols * n);
      for (size_t i = 0; i < n; ++i) {
        data[5 * i + 0] = m.xy1[2 * i];
        data[5 * i + 1] = m.xy1[2 * i + 1];
        data[5 * i + 2] = m.xy2[2 * i];
        data[5 * i + 3] = m.xy2[2 * i + 1];
        data[5 * i + 4] = m.scores[i];
      }
      const int64_t pair_id =
          static_cast<int64_t>(ImagePairToPairId(pair.first, pair.second));
      sqlite3_reset(insert.stmt);
      sqlite3_bind_int64(insert.stmt, 1, pair_id);
      sqlite3_bind_int64(insert.stmt, 2, static_cast<int64_t>(n));
      sqlite3_bind_int(insert.stmt, 3, kRawCols);
      sqlite3_bind_blob(insert.stmt,
                        4,
                        data.data(),
                        static_cast<int>(data.size() * sizeof(float)),
                        SQLITE_TRANSIENT);
      if (sqlite3_step(insert.stmt) != SQLITE_DONE)
        db.Fail("cannot write matches");
      digest.AddInt(pair_id);
      digest.AddInt(static_cast<int64_t>(n));
      digest.Add(data.data(), data.size() * sizeof(float));
      num_matches += static_cast<int64_t>(n);
      on_pair();
    }
    const std::vector<std::pair<std::string, std::string>> meta = {
        {"format", kShardFormat},
        {"plan_id", plan.plan_id},
        {"chunk", std::to_string(chunk)},
        {"num_pairs", std::to_string(pairs.size())},
        {"num_matches", std::to_string(num_matches)},
        {"matcher", matcher_key},
        {"digest", digest.Hex()},
        {"host", HostName()},
        {"complete", "1"}};
    StmtGuard put{db.Prepare("INSERT INTO l2m_shard(key, value) VALUES(?, ?)")};
    for (const auto& [k, v] : meta) {
      sqlite3_reset(put.stmt);
      sqlite3_bind_text(put.stmt, 1, k.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(put.stmt, 2, v.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(put.stmt) != SQLITE_DONE)
        db.Fail("cannot write metadata");
    }
    sqlite3_finalize(insert.stmt);
    insert.stmt = nullptr;
    sqlite3_finalize(put.stmt);
    put.stmt = nullptr;
    db.Exec("COMMIT;");
    db.Close();
    FsyncPath(tmp, false);
    fs::rename(tmp, path);
    FsyncPath(fs::path(path).parent_path().string(), true);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  return num_matches;
}

// Removes temporary chunk files that a dead process of this host left.
void RemoveStaleTemporaries(const MatchPlan& plan, int64_t chunk) {
  const std::string prefix = ChunkFileName(chunk) + ".tmp." + HostName() + ".";
  for (const auto& f : ChunkFilesIn(plan.plan_path + "/shards")) {
    const std::string name = f.filename().string();
    if (!StartsWith(name, prefix)) continue;
    const std::string pid_text = name.substr(prefix.size());
    char* end = nullptr;
    const long pid = std::strtol(pid_text.c_str(), &end, 10);
    if (end == pid_text.c_str() || *end != '\0' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ec;
      fs::remove(f, ec);
    }
  }
}

}  // namespace

ShardMatchSummary MatchShard(const MatchPlan& plan,
                             const ShardSpec& shard,
                             Matcher* matcher,
                             const ShardMatchOptions& options) {
  std::string error;
  if (!options.Check(&error))
    throw std::invalid_argument("Shard matching options: " + error);
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
    throw std::invalid_argument("invalid shard " + shard.ToString());
  Timer timer;
  ShardMatchSummary summary;
  const std::string key = ShardMatcherKey(*matcher);
  const std::vector<int64_t> chunks = plan.ChunksOfShard(shard);
  summary.num_chunks = static_cast<int64_t>(chunks.size());
  fs::create_directories(plan.plan_path + "/shards");

  // Which chunks still need work (a complete, valid file is skipped).
  std::vector<int64_t> todo;
  int64_t todo_pairs = 0;
  for (int64_t c : chunks) {
    const std::string path = plan.ChunkPath(c);
    if (FileExists(path)) {
      try {
        const ShardFileInfo info = CheckShardFile(plan, c);
        if (info.matcher != key) {
          throw std::invalid_argument(
              "Shard '" + path + "' holds matches of matcher '" + info.matcher +
              "', not '" + key +
              "'; one plan takes one matcher (use a new plan folder)");
        }
        ++summary.num_done_before;
        continue;
      } catch (const std::invalid_argument&) {
        throw;
      } catch (const std::exception& e) {
        std::cerr << "WARNING: " << e.what() << "; matching it again"
                  << std::endl;
        ++summary.num_redone;
      }
    }
    todo.push_back(c);
    todo_pairs += plan.ChunkEnd(c) - plan.ChunkBegin(c);
  }
  if (todo.empty()) {
    summary.seconds = timer.ElapsedSeconds();
    return summary;
  }

  // Names of the images these chunks need (only those: bounded memory).
  std::unordered_set<image_t> needed;
  for (int64_t c : todo)
    for (const auto& p :
         ReadPlanPairs(plan, plan.ChunkBegin(c), plan.ChunkEnd(c))) {
      needed.insert(p.first);
      needed.insert(p.second);
    }
  std::unordered_map<image_t, std::string> names;
  {
    std::ifstream in(ImagesTsvPath(plan.plan_path));
    std::string line;
    while (std::getline(in, line)) {
      const auto f = ReadTsvLineFields(line);
      if (f.size() != 2) continue;
      const auto id = static_cast<image_t>(std::stoul(f[0]));
      if (needed.count(id)) names[id] = f[1];
    }
  }

  LruCache<MatcherImage> images(options.image_cache_size);
  LruCache<ImageFeatures> features(options.feature_cache_size);
  auto image_of = [&](image_t id) -> const MatcherImage& {
    return images.Get(id, [&] {
      auto it = names.find(id);
      if (it == names.end())
        throw std::runtime_error("image id " + std::to_string(id) +
                                 " is not in the plan");
      return LoadMatcherImage(id, plan.image_path + "/" + it->second);
    });
  };
  auto features_of = [&](image_t id) -> const ImageFeatures& {
    return features.Get(id, [&] { return matcher->Extract(image_of(id)); });
  };
  auto match = [&](const ImagePair& pair) {
    PairMatches m;
    if (matcher->IsDense()) {
      m = matcher->MatchDense(image_of(pair.first), image_of(pair.second));
    } else {
      // The LRU holds >= 2 entries and is node-based: the first reference
      // stays valid while the second is looked up.
      const ImageFeatures& f1 = features_of(pair.first);
      m = matcher->MatchFeatures(f1, features_of(pair.second));
    }
    if (m.xy1.size() != 2 * m.size() || m.xy2.size() != 2 * m.size()) {
      throw std::runtime_error("matcher '" + matcher->Name() +
                               "' returned inconsistent match arrays");
    }
    CapMatches(&m, options.max_num_matches);
    if (!matcher->IsDense() && options.jitter_px > 0) {
      const uint64_t pair_id = ImagePairToPairId(pair.first, pair.second);
      std::seed_seq seq{options.seed,
                        static_cast<unsigned>(pair_id & 0xffffffffu),
                        static_cast<unsigned>(pair_id >> 32)};
      std::mt19937 rng(seq);
      std::uniform_real_distribution<float> u(
          -static_cast<float>(options.jitter_px),
          static_cast<float>(options.jitter_px));
      for (auto& v : m.xy1) v += u(rng);
      for (auto& v : m.xy2) v += u(rng);
    }
    return m;
  };

  Progress progress("match shard " + std::to_string(shard.index) + "/" +
                        std::to_string(shard.count),
                    todo_pairs);
  for (int64_t c : todo) {
    RemoveStaleTemporaries(plan, c);
    auto pairs = ReadPlanPairs(plan, plan.ChunkBegin(c), plan.ChunkEnd(c));
    // Within a chunk, in pair id order (the order the file is checked in).
    std::sort(pairs.begin(), pairs.end());
    summary.num_matches +=
        WriteChunkFile(plan, c, pairs, key, match, [&] { progress.Add(); });
    summary.num_pairs += static_cast<int64_t>(pairs.size());
  }
  progress.Finish();
  summary.seconds = timer.ElapsedSeconds();
  return summary;
}

ShardFileInfo CheckShardFile(const MatchPlan& plan, int64_t chunk) {
  const std::string path = plan.ChunkPath(chunk);
  auto fail = [&](const std::string& problem) {
    throw std::runtime_error("Shard '" + path + "' " + problem +
                             " (delete it and run `l2m match` for its chunk "
                             "again)");
  };
  if (!FileExists(path)) fail("is missing");
  CheckSqliteLength(path);
  ShardFileInfo info;
  try {
    SqliteFile db(path, SQLITE_OPEN_READONLY, "Shard");
    std::unordered_map<std::string, std::string> meta;
    {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v2(db.get(),
                             "SELECT key, value FROM l2m_shard",
                             -1,
                             &raw,
                             nullptr) != SQLITE_OK) {
        sqlite3_finalize(raw);
        fail(std::string("is not an l2m shard (") + sqlite3_errmsg(db.get()) +
             ")");
      }
      StmtGuard stmt{raw};
      int rc;
      while ((rc = sqlite3_step(stmt.stmt)) == SQLITE_ROW) {
        meta[reinterpret_cast<const char*>(sqlite3_column_text(stmt.stmt, 0))] =
            reinterpret_cast<const char*>(sqlite3_column_text(stmt.stmt, 1));
      }
      if (rc != SQLITE_DONE) fail("is damaged");
    }
    if (meta["format"] != kShardFormat)
      fail("is not an l2m shard (format '" + meta["format"] + "')");
    if (meta["plan_id"] != plan.plan_id) {
      fail("belongs to another plan (" + meta["plan_id"] + ", this plan is " +
           plan.plan_id + ")");
    }
    if (meta["chunk"] != std::to_string(chunk))
      fail("holds chunk " + meta["chunk"] + ", not " + std::to_string(chunk));
    if (meta["complete"] != "1") fail("is incomplete");
    auto pairs =
        ReadPlanPairs(plan, plan.ChunkBegin(chunk), plan.ChunkEnd(chunk));
    std::sort(pairs.begin(), pairs.end());  // Stored in pair id order.
    if (meta["num_pairs"] != std::to_string(pairs.size()))
      fail("says it holds " + meta["num_pairs"] + " pairs, the chunk has " +
           std::to_string(pairs.size()));
    info.matcher = meta["matcher"];
    StmtGuard rows{db.Prepare(
        "SELECT pair_id, rows, cols, data FROM l2m_raw_matches ORDER BY "
        "pair_id")};
    Fnv64 digest;
    size_t i = 0;
    int rc;
    while ((rc = sqlite3_step(rows.stmt)) == SQLITE_ROW) {
      const int64_t pair_id = sqlite3_column_int64(rows.stmt, 0);
      if (i >= pairs.size() ||
          pair_id != static_cast<int64_t>(
                         ImagePairToPairId(pairs[i].first, pairs[i].second))) {
        fail("holds a pair (id " + std::to_string(pair_id) +
             ") that is not the chunk's next pair");
      }
      const int64_t n = sqlite3_column_int64(rows.stmt, 1);
      const int cols = sqlite3_column_int(rows.stmt, 2);
      const int bytes = sqlite3_column_bytes(rows.stmt, 3);
      const void* data = sqlite3_column_blob(rows.stmt, 3);
      if (cols != kRawCols || n < 0 ||
          static_cast<int64_t>(bytes) != n * kRawCols * 4) {
        fail("has a damaged row for pair id " + std::to_string(pair_id));
      }
      digest.AddInt(pair_id);
      digest.AddInt(n);
      if (bytes > 0) digest.Add(data, bytes);
      info.num_matches += n;
      ++i;
    }
    if (rc != SQLITE_DONE)
      fail(std::string("is damaged (") + sqlite3_errmsg(db.get()) + ")");
    if (i != pairs.size())
      fail("holds " + std::to_string(i) + " of the chunk's " +
           std::to_string(pairs.size()) + " pairs");
    if (digest.Hex() != meta["digest"])
      fail("fails its checksum (damaged data)");
    info.num_pairs = static_cast<int64_t>(i);
    info.digest = digest.Hex();
  } catch (const std::runtime_error& e) {
    if (StartsWith(e.what(), "Shard '")) throw;
    fail(std::string("is unreadable: ") + e.what());
  }
  return info;
}

MergeSummary MergeShards(const MatchPlan& plan, Database* database) {
  Timer timer;
  MergeSummary summary;
  summary.num_chunks = plan.num_chunks;

  // The database must be the plan's: the same images.
  {
    const auto db_images = database->ReadAllImages();
    const auto plan_images = ReadPlanImages(plan);
    bool same = db_images.size() == plan_images.size();
    for (size_t i = 0; same && i < db_images.size(); ++i) {
      same = db_images[i].image_id == plan_images[i].image_id &&
             db_images[i].name == plan_images[i].name;
    }
    if (!same) {
      throw std::runtime_error(
          "Database '" + database->path() + "' does not hold the images of " +
          "plan '" + plan.plan_path + "' (" + std::to_string(db_images.size()) +
          " vs " + std::to_string(plan_images.size()) +
          " images, or other ids/names)");
    }
  }

  // Every chunk present and valid before anything is written.
  std::vector<std::string> missing;
  for (int64_t c = 0; c < plan.num_chunks; ++c)
    if (!FileExists(plan.ChunkPath(c))) missing.push_back(ChunkFileName(c));
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i)
      list += (i ? ", " : "") + missing[i];
    if (missing.size() > 5) list += ", ...";
    throw std::runtime_error(
        "Plan '" + plan.plan_path + "': " + std::to_string(missing.size()) +
        " of " + std::to_string(plan.num_chunks) +
        " chunk files are missing (" + list + "); run `l2m match --plan_path " +
        plan.plan_path + "` (any --shard) to finish them");
  }
  std::vector<ShardFileInfo> infos(plan.num_chunks);
  Progress check("merge: check shards", plan.num_chunks);
  for (int64_t c = 0; c < plan.num_chunks; ++c) {
    infos[c] = CheckShardFile(plan, c);
    if (infos[c].matcher != infos[0].matcher) {
      throw std::runtime_error(
          "Shard '" + plan.ChunkPath(c) + "' holds matches of matcher '" +
          infos[c].matcher + "', chunk 0 of '" + infos[0].matcher + "'");
    }
    check.Add();
  }
  check.Finish();
  summary.matcher = infos[0].matcher;

  const auto stored = database->ReadMetadata("matcher");
  if (stored.has_value() && *stored != summary.matcher &&
      database->QueryInt("SELECT COUNT(*) FROM l2m_raw_matches") > 0) {
    throw std::runtime_error("Database '" + database->path() +
                             "' already holds matches of matcher '" + *stored +
                             "', the shards are of '" + summary.matcher +
                             "'; merge into a fresh copy of the database");
  }
  database->Exec(
      "CREATE TABLE IF NOT EXISTS l2m_merged_chunks (plan_id TEXT NOT NULL, "
      "chunk INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY(plan_id, "
      "chunk))");
  database->WriteMetadata("matcher", summary.matcher);
  database->WriteMetadata("plan_id", plan.plan_id);

  Progress progress("merge: copy shards", plan.num_chunks);
  for (int64_t c = 0; c < plan.num_chunks; ++c) {
    progress.Add();
    summary.num_matches += infos[c].num_matches;
    const std::string where = "plan_id='" + plan.plan_id +
                              "' AND chunk=" + std::to_string(c) +
                              " AND digest='" + infos[c].digest + "'";
    if (database->QueryInt("SELECT COUNT(*) FROM l2m_merged_chunks WHERE " +
                           where) > 0) {
      ++summary.num_already_merged;
      continue;
    }
    std::string quoted = plan.ChunkPath(c);
    for (size_t p = 0; (p = quoted.find('\'', p)) != std::string::npos; p += 2)
      quoted.insert(p, "'");
    database->Exec("ATTACH DATABASE '" + quoted + "' AS l2m_shard_in");
    try {
      Database::Transaction t(database);
      database->Exec(
          "INSERT OR REPLACE INTO main.l2m_raw_matches(pair_id, rows, cols, "
          "data) SELECT pair_id, rows, cols, data FROM "
          "l2m_shard_in.l2m_raw_matches");
      database->Exec(
          "INSERT OR REPLACE INTO l2m_merged_chunks(plan_id, chunk, digest) "
          "VALUES('" +
          plan.plan_id + "', " + std::to_string(c) + ", '" + infos[c].digest +
          "')");
      t.Commit();
    } catch (...) {
      database->Exec("DETACH DATABASE l2m_shard_in");
      throw;
    }
    database->Exec("DETACH DATABASE l2m_shard_in");
    ++summary.num_merged;
  }
  progress.Finish();
  summary.num_pairs = plan.num_pairs;
  summary.seconds = timer.ElapsedSeconds();
  return summary;
}

std::string RawMatchesDigest(const Database& database) {
  SqliteFile db(database.path(), SQLITE_OPEN_READONLY, "Database");
  StmtGuard rows{db.Prepare(
      "SELECT pair_id, rows, data FROM l2m_raw_matches ORDER BY pair_id")};
  Fnv64 digest;
  int rc;
  while ((rc = sqlite3_step(rows.stmt)) == SQLITE_ROW) {
    digest.AddInt(sqlite3_column_int64(rows.stmt, 0));
    digest.AddInt(sqlite3_column_int64(rows.stmt, 1));
    const int bytes = sqlite3_column_bytes(rows.stmt, 2);
    if (bytes > 0) digest.Add(sqlite3_column_blob(rows.stmt, 2), bytes);
  }
  if (rc != SQLITE_DONE) db.Fail("cannot be read");
  return digest.Hex();
}

}  // namespace l2m
