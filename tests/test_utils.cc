#include "tests/test_utils.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace l2m {
namespace test {

std::string SharedDir() {
  const char* dir = std::getenv("L2M_SHARED_DIR");
  if (dir == nullptr) return "";
  struct stat st;
  if (::stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  return dir;
}

TempDir::TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "l2m_test_XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> buf;
  std::string text;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    text.append(buf.data(), n);
  }
  const int status = ::pclose(pipe);
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string BinaryPath(const std::string& relative) {
  const char* dir = std::getenv("L2M_BINARY_DIR");
  return std::string(dir != nullptr ? dir : ".") + "/" + relative;
}

}  // namespace test
}  // namespace l2m
