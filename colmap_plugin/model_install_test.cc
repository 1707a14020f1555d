// `l2m models install` against a loopback HTTP server (these machines are
// offline): resume after a dropped connection or an interrupted run,
// servers that ignore Range, checksums, HTTP errors and file:// URLs.

#include "colmap_plugin/model_install.h"

#include "l2m_core/util/file.h"
#include "l2m_core/weights/safetensors.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace l2m {
namespace {

// Serves one body at /model.pth with HTTP/1.1 Range support. It can drop the
// connection after `cut_after` body bytes of the first response, ignore
// Range headers, or answer 404.
class LoopbackServer {
 public:
  explicit LoopbackServer(std::string body) : body_(std::move(body)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 8) != 0) {
      throw std::runtime_error("loopback server: bind/listen failed");
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }

  std::string Url(const std::string& path = "/model.pth") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::atomic<int64_t> cut_after{-1};
  std::atomic<bool> ignore_range{false};
  std::vector<std::string> RangeHeaders() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ranges_;
  }
  int NumRequests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(ranges_.size());
  }

 private:
  void Serve() {
    while (!stop_) {
      const int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      Handle(client);
      ::close(client);
    }
  }
  void Handle(int client) {
    std::string request;
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    const std::string path =
        request.substr(4, request.find(' ', 4) - 4);  // "GET /x HTTP/1.1"
    std::string range;
    const size_t r = request.find("Range: bytes=");
    if (r != std::string::npos) {
      range = request.substr(r + 13, request.find("\r\n", r) - r - 13);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ranges_.push_back(range);
    }
    if (path != "/model.pth") {
      Send(client, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    size_t start = 0;
    if (!range.empty() && !ignore_range) start = std::stoull(range);
    if (start >= body_.size() && !range.empty() && !ignore_range) {
      Send(client,
           "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    std::string head =
        start > 0 ? "HTTP/1.1 206 Partial Content\r\n" : "HTTP/1.1 200 OK\r\n";
    head += "Content-Length: " + std::to_string(body_.size() - start) + "\r\n";
    if (start > 0) {
      head += "Content-Range: bytes " + std::to_string(start) + "-" +
              std::to_string(body_.size() - 1) + "/" +
              std::to_string(body_.size()) + "\r\n";
    }
    head += "Connection: close\r\n\r\n";
    Send(client, head);
    std::string payload = body_.substr(start);
    const int64_t cut = cut_after.exchange(-1);
    if (cut >= 0 && cut < static_cast<int64_t>(payload.size())) {
      Send(client, payload.substr(0, static_cast<size_t>(cut)));
      return;  // Drops the connection mid-body.
    }
    Send(client, payload);
  }
  static void Send(int client, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n =
          ::send(client, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  std::string body_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> ranges_;
};

// A small real checkpoint (safetensors) as the served file.
std::string MakeCheckpoint(const test::TempDir& dir) {
  torch::manual_seed(0);
  const std::string path = dir.File("src.safetensors");
  WriteSafetensors(path,
                   {{"layer.weight", torch::randn({64, 300})},
                    {"layer.bias", torch::randn({64})}},
                   {});
  return ReadBinaryFile(path);
}

InstallOptions Options(const test::TempDir& dir) {
  InstallOptions options;
  options.cache_dir = dir.File("cache");
  options.download.max_retries = 3;
  options.download.stall_timeout_s = 5;
  return options;
}

TEST(ModelInstall, ResumesAfterADroppedConnectionAndVerifiesTheChecksum) {
  test::TempDir dir;
  const std::string body = MakeCheckpoint(dir);
  std::ofstream(dir.File("expected")) << body;
  const std::string sha = Sha256OfFile(dir.File("expected"));
  LoopbackServer server(body);
  server.cut_after = static_cast<int64_t>(body.size() / 3);
  InstallOptions options = Options(dir);
  options.url = server.Url();
  options.sha256 = sha;
  options.keep_download = true;
  const InstallSummary s = InstallModel("tiny", options);
  EXPECT_EQ(s.download.attempts, 2);
  EXPECT_EQ(s.download.bytes, body.size());
  EXPECT_EQ(s.download.sha256, sha);
  EXPECT_EQ(s.download.checksum_source, "given");
  const auto ranges = server.RangeHeaders();
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], std::to_string(body.size() / 3) + "-");
  EXPECT_EQ(ReadBinaryFile(dir.File("cache/downloads/model.pth")), body);
  // The cache entry holds the same tensors and records where they came from.
  const StateDict sd = ReadSafetensors(s.import.output_path);
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_TRUE(torch::equal(
      *sd.Find("layer.bias"),
      *ReadSafetensors(dir.File("src.safetensors")).Find("layer.bias")));
  EXPECT_EQ(sd.metadata.at("l2m.sha256"), sha);
  EXPECT_EQ(sd.metadata.at("l2m.url"), server.Url());
  EXPECT_FALSE(FileExists(dir.File("cache/downloads/model.pth.part")));
}

TEST(ModelInstall, ContinuesThePartialFileOfAnInterruptedRun) {
  test::TempDir dir;
  const std::string body = MakeCheckpoint(dir);
  LoopbackServer server(body);
  std::filesystem::create_directories(dir.File("dl"));
  const std::string target = dir.File("dl/model.pth");
  std::ofstream(target + ".part", std::ios::binary)
      << body.substr(0, 1000);  // What a killed run left behind.
  const DownloadResult r = DownloadFile(server.Url(), target, "");
  EXPECT_EQ(r.resumed_from, 1000u);
  EXPECT_EQ(server.RangeHeaders().at(0), "1000-");
  EXPECT_EQ(ReadBinaryFile(target), body);
}

TEST(ModelInstall, StartsOverWhenTheServerIgnoresRange) {
  test::TempDir dir;
  const std::string body = MakeCheckpoint(dir);
  LoopbackServer server(body);
  server.ignore_range = true;
  const std::string target = dir.File("model.pth");
  std::ofstream(target + ".part", std::ios::binary) << "garbage-prefix";
  DownloadFile(server.Url(), target, "");
  EXPECT_EQ(ReadBinaryFile(target), body);
}

TEST(ModelInstall, ChecksumMismatchLeavesNothingBehind) {
  test::TempDir dir;
  const std::string body = MakeCheckpoint(dir);
  LoopbackServer server(body);
  InstallOptions options = Options(dir);
  options.url = server.Url();
  options.sha256 = std::string(64, 'a');
  try {
    InstallModel("tiny", options);
    FAIL() << "expected a checksum error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(FileExists(dir.File("cache/tiny.safetensors")));
  EXPECT_FALSE(FileExists(dir.File("cache/downloads/model.pth.part")));
  EXPECT_FALSE(FileExists(dir.File("cache/downloads/model.pth")));
}

TEST(ModelInstall, HttpErrorsAndUnknownNamesAreClear) {
  test::TempDir dir;
  LoopbackServer server("x");
  InstallOptions options = Options(dir);
  options.url = server.Url("/missing.pth");
  try {
    InstallModel("tiny", options);
    FAIL() << "expected an HTTP error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 404"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("/missing.pth"), std::string::npos);
  }
  EXPECT_EQ(server.NumRequests(), 1);  // No pointless retries of a 404.
  try {
    InstallModel("no_such_model", Options(dir));
    FAIL() << "expected an unknown-name error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("roma_outdoor"), std::string::npos)
        << e.what();
  }
}

TEST(ModelInstall, FileUrlsAndCorruptCheckpoints) {
  test::TempDir dir;
  const std::string body = MakeCheckpoint(dir);
  InstallOptions options = Options(dir);
  options.url = "file://" + dir.File("src.safetensors");
  const InstallSummary s = InstallModel("from_file", options);
  EXPECT_EQ(s.import.num_tensors, 2u);
  EXPECT_TRUE(s.download.checksum_source.empty());
  // A download that is not a checkpoint fails at import and installs nothing.
  std::ofstream(dir.File("junk.pth")) << "this is not a checkpoint";
  options.url = "file://" + dir.File("junk.pth");
  EXPECT_THROW(InstallModel("junk", options), std::exception);
  EXPECT_FALSE(FileExists(dir.File("cache/junk.safetensors")));
}

TEST(ModelInstall, PublishedModelsHaveValidNamesAndHttpsUrls) {
  for (const PublishedModel& m : PublishedModels()) {
    EXPECT_NO_THROW(ValidateModelName(m.name)) << m.name;
    EXPECT_EQ(m.url.rfind("https://", 0), 0u) << m.url;
  }
}

}  // namespace
}  // namespace l2m
