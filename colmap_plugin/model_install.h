#pragma once

// `l2m models install NAME`: downloads published weights with libcurl
// (resumable, checksummed) and imports them into the model cache.

#include "l2m_core/weights/model_cache.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace l2m {

// A checkpoint published by its authors.
struct PublishedModel {
  std::string name;  // Cache name after installation.
  std::string url;
  // Hex SHA-256 of the file where the authors publish one; empty otherwise
  // (then Hugging Face's X-Linked-ETag is used when the server sends it, and
  // the checksum is recorded in the cache entry's metadata either way).
  std::string sha256;
  std::string description;
};

// The official L2M / RoMa / DINOv2 checkpoints the presets use.
const std::vector<PublishedModel>& PublishedModels();

struct DownloadOptions {
  // Continue a previous `<path>.part` with an HTTP Range request.
  bool resume = true;
  // Attempts after a dropped connection (each resumes where it stopped).
  int max_retries = 5;
  // Abort an attempt when fewer than 1 byte/s arrive for this long.
  int stall_timeout_s = 60;
  int connect_timeout_s = 30;
  // Called with (bytes so far, total bytes or 0 when unknown).
  std::function<void(uint64_t, uint64_t)> progress;

  void Check() const;
};

struct DownloadResult {
  uint64_t bytes = 0;         // Size of the finished file.
  uint64_t resumed_from = 0;  // Bytes already on disk before this call.
  int attempts = 0;
  std::string sha256;           // Of the finished file.
  std::string checksum_source;  // "given", "x-linked-etag" or "" (none).
};

// Downloads `url` (http, https or file) to `path` through `path + ".part"`,
// resuming a partial file, and renames it into place only after the size and
// checksum are right. `expected_sha256` (hex, may be empty) is checked; a
// mismatch deletes the partial file and throws. Throws std::runtime_error
// naming the URL on HTTP errors, network failures after all retries, or a
// file that cannot be written.
DownloadResult DownloadFile(const std::string& url,
                            const std::string& path,
                            const std::string& expected_sha256,
                            const DownloadOptions& options = DownloadOptions());

// Hex SHA-256 of a file (OpenSSL); throws naming the file when unreadable.
std::string Sha256OfFile(const std::string& path);

struct InstallOptions {
  // Download from here instead of the published address (a mirror, or a
  // file:// URL for a copy fetched by other means).
  std::string url;
  // Checksum to enforce (overrides the published one).
  std::string sha256;
  std::string cache_dir;  // Empty: DefaultModelCacheDir().
  bool overwrite = false;
  // Keep the downloaded checkpoint next to the cache entry.
  bool keep_download = false;
  DownloadOptions download;

  void Check() const;
};

struct InstallSummary {
  DownloadResult download;
  ImportSummary import;
};

// Installs a published model by name, or any checkpoint under `name` when
// options.url is set. An unknown name without a URL is an error listing the
// published names. The cache entry appears only once download, checksum and
// import all succeeded.
InstallSummary InstallModel(const std::string& name,
                            const InstallOptions& options = InstallOptions());

}  // namespace l2m
