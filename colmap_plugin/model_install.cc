#include "colmap_plugin/model_install.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <curl/curl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <openssl/evp.h>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace l2m {
namespace {

namespace fs = std::filesystem;

constexpr char kL2mHf[] =
    "https://huggingface.co/datasets/Liangyingping/L2Mpp-checkpoints/resolve/"
    "main/";

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string ToLower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return s;
}

bool IsHexSha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

uint64_t FileSizeOr0(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(size);
}

// State of one transfer attempt, shared with libcurl's callbacks.
struct Transfer {
  std::FILE* file = nullptr;
  long status = 0;  // Of the last response (redirects reset it).
  std::string linked_etag;
  uint64_t content_length = 0;
  uint64_t offset = 0;  // Bytes on disk when the attempt started.
  uint64_t written = 0;
  bool restart_from_zero = false;  // Server ignored our Range request.
  bool write_failed = false;
  const DownloadOptions* options = nullptr;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (first, or after a redirect).
    const size_t sp = line.find(' ');
    t->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
    t->linked_etag.clear();
    t->content_length = 0;
    return size * count;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * count;
  const std::string key = ToLower(line.substr(0, colon));
  std::string value = line.substr(colon + 1);
  value.erase(0, value.find_first_not_of(" \t\""));
  value.erase(value.find_last_not_of(" \t\r\n\"") + 1);
  if (key == "x-linked-etag") t->linked_etag = ToLower(value);
  if (key == "content-length") t->content_length = std::stoull("0" + value);
  return size * count;
}

size_t OnData(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->written == 0 && t->offset > 0 && t->status == 200) {
    // We asked for a range and got the whole file: start over.
    t->restart_from_zero = true;
    if (std::fseek(t->file, 0, SEEK_SET) != 0 ||
        ::ftruncate(fileno(t->file), 0) != 0) {
      t->write_failed = true;
      return 0;
    }
    t->offset = 0;
  }
  if (std::fwrite(data, 1, n, t->file) != n) {
    t->write_failed = true;
    return 0;  // Makes libcurl abort with CURLE_WRITE_ERROR.
  }
  t->written += n;
  return n;
}

int OnProgress(
    void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->options->progress) {
    const uint64_t base = t->restart_from_zero ? 0 : t->offset;
    t->options->progress(base + static_cast<uint64_t>(now),
                         total > 0 ? base + static_cast<uint64_t>(total) : 0);
  }
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

}  // namespace

const std::vector<PublishedModel>& PublishedModels() {
  static const std::vector<PublishedModel> models = {
      {"l2m++_560x560",
       std::string(kL2mHf) + "l2m%2B%2B_560x560.pth",
       "",
       "L2M++ matcher (decoder + VGG19-BN), v1, the reference's default"},
      {"l2m++_560x560v2",
       std::string(kL2mHf) + "l2m%2B%2B_560x560v2.pth.ckpt",
       "",
       "L2M++ matcher v2 (Lightning .ckpt)"},
      {"dinov2l_distilled",
       std::string(kL2mHf) + "dinov2l_distilled.pth",
       "",
       "L2M's DINOv2 ViT-L/14 coarse encoder"},
      {"roma_outdoor",
       "https://github.com/Parskatt/storage/releases/download/roma/"
       "roma_outdoor.pth",
       "",
       "RoMa outdoor matcher (decoder + VGG19-BN)"},
      {"roma_indoor",
       "https://github.com/Parskatt/storage/releases/download/roma/"
       "roma_indoor.pth",
       "",
       "RoMa indoor matcher (decoder + VGG19-BN)"},
      {"dinov2_vitl14",
       "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/"
       "dinov2_vitl14_pretrain.pth",
       "",
       "DINOv2 ViT-L/14 (RoMa's coarse encoder)"},
  };
  return models;
}

void DownloadOptions::Check() const {
  if (max_retries < 0) throw std::invalid_argument("max_retries must be >= 0");
  if (stall_timeout_s < 1 || connect_timeout_s < 1) {
    throw std::invalid_argument("download timeouts must be >= 1 s");
  }
}

void InstallOptions::Check() const {
  download.Check();
  if (!sha256.empty() && !IsHexSha256(sha256)) {
    throw std::invalid_argument("--sha256 '" + sha256 +
                                "' is not 64 hexadecimal digits");
  }
}

std::string Sha256OfFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                              EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL SHA-256 is unavailable");
  }
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) {
      EVP_DigestUpdate(
          ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
    }
  }
  if (in.bad()) throw std::runtime_error("error reading '" + path + "'");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

DownloadResult DownloadFile(const std::string& url,
                            const std::string& path,
                            const std::string& expected_sha256,
                            const DownloadOptions& options) {
  options.Check();
  if (!expected_sha256.empty() && !IsHexSha256(expected_sha256)) {
    throw std::invalid_argument("checksum '" + expected_sha256 + "' for " +
                                url + " is not a hex SHA-256");
  }
  InitCurlOnce();
  const std::string part = path + ".part";
  std::error_code ec;
  if (!fs::path(path).parent_path().empty()) {
    fs::create_directories(fs::path(path).parent_path(), ec);
  }
  if (!options.resume) fs::remove(part, ec);

  DownloadResult result;
  result.resumed_from = FileSizeOr0(part);
  std::string linked_etag;
  for (int attempt = 0;; ++attempt) {
    result.attempts = attempt + 1;
    Transfer t;
    t.options = &options;
    t.offset = FileSizeOr0(part);
    t.file = std::fopen(part.c_str(), t.offset > 0 ? "ab" : "wb");
    if (t.file == nullptr) {
      throw std::runtime_error("cannot write '" + part + "'");
    }
    std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
    char error_buffer[CURL_ERROR_SIZE] = "";
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "l2m/0.1 (libcurl)");
    curl_easy_setopt(c,
                     CURLOPT_CONNECTTIMEOUT,
                     static_cast<long>(options.connect_timeout_s));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(
        c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.stall_timeout_s));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnData);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    if (t.offset > 0) {
      // A Range request; a server that ignores it answers 200 and OnData
      // starts the file over.
      const std::string range = std::to_string(t.offset) + "-";
      curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    }
    const CURLcode code = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    const bool close_failed = std::fclose(t.file) != 0;
    if (!t.linked_etag.empty()) linked_etag = t.linked_etag;
    if (t.write_failed || close_failed) {
      throw std::runtime_error("cannot write '" + part +
                               "' (disk full?) while downloading " + url);
    }
    if (code == CURLE_OK) break;
    if (status == 416 && t.offset > 0) {
      // The partial file already holds everything the server has.
      break;
    }
    const std::string what =
        std::string(curl_easy_strerror(code)) +
        (error_buffer[0] != '\0' ? std::string(": ") + error_buffer : "");
    // HTTP errors (404, 403, ...) do not heal by retrying.
    if (code == CURLE_HTTP_RETURNED_ERROR ||
        code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT ||
        code == CURLE_FILE_COULDNT_READ_FILE ||
        attempt >= options.max_retries) {
      throw std::runtime_error(
          "download of " + url + " failed" +
          (status > 0 ? " (HTTP " + std::to_string(status) + ")" : "") + ": " +
          what + "; " + std::to_string(FileSizeOr0(part)) + " bytes kept in '" +
          part + "' for a later resume");
    }
  }

  result.bytes = FileSizeOr0(part);
  result.sha256 = Sha256OfFile(part);
  std::string expected = ToLower(expected_sha256);
  if (!expected.empty()) {
    result.checksum_source = "given";
  } else if (IsHexSha256(linked_etag)) {
    expected = linked_etag;
    result.checksum_source = "x-linked-etag";
  }
  if (!expected.empty() && expected != result.sha256) {
    fs::remove(part, ec);
    throw std::runtime_error("checksum mismatch for " + url + ": expected " +
                             expected + ", got " + result.sha256 +
                             " (the partial download was deleted)");
  }
  fs::rename(part, path, ec);
  if (ec) {
    throw std::runtime_error("cannot move '" + part + "' to '" + path +
                             "': " + ec.message());
  }
  return result;
}

InstallSummary InstallModel(const std::string& name,
                            const InstallOptions& options) {
  options.Check();
  ValidateModelName(name);
  const auto& models = PublishedModels();
  const auto it = std::find_if(models.begin(),
                               models.end(),
                               [&](const auto& m) { return m.name == name; });
  if (it == models.end() && options.url.empty()) {
    std::string names;
    for (const auto& m : models)
      names += "\n  " + m.name + "  " + m.description;
    throw std::invalid_argument("no published model named '" + name +
                                "' (give --url to install another checkpoint "
                                "under this name); published:" +
                                names);
  }
  const std::string url = options.url.empty() ? it->url : options.url;
  const std::string sha256 =
      !options.sha256.empty()
          ? options.sha256
          : (it != models.end() && options.url.empty() ? it->sha256
                                                       : std::string());
  const std::string cache =
      options.cache_dir.empty() ? DefaultModelCacheDir() : options.cache_dir;
  const std::string cached = CachedModelPath(name, cache);
  if (!options.overwrite && fs::exists(cached)) {
    throw std::runtime_error("model '" + name + "' is already installed (" +
                             cached + "); pass --overwrite 1 to replace it");
  }
  // The extension matters to the checkpoint reader only through the
  // content, but keep it for people looking into the folder.
  std::string file = url.substr(url.find_last_of('/') + 1);
  file = file.substr(0, file.find_first_of("?#"));
  if (file.empty()) file = name + ".pth";
  const std::string download_path = cache + "/downloads/" + file;

  InstallSummary summary;
  summary.download = DownloadFile(url, download_path, sha256, options.download);
  ImportOptions import;
  import.overwrite = options.overwrite;
  import.extra_metadata["l2m.url"] = url;
  import.extra_metadata["l2m.sha256"] = summary.download.sha256;
  import.extra_metadata["l2m.sha256_verified"] =
      summary.download.checksum_source.empty()
          ? "no (none published)"
          : summary.download.checksum_source;
  summary.import = ImportCheckpointToCache(download_path, name, cache, import);
  if (!options.keep_download) {
    std::error_code ec;
    fs::remove(download_path, ec);
  }
  return summary;
}

}  // namespace l2m
