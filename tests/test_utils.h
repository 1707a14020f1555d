#pragma once

#include <gtest/gtest.h>

#include <string>

namespace l2m {
namespace test {

// The read-only ../shared folder (L2M_SHARED_DIR), or "" where it is absent.
std::string SharedDir();

// A fresh, empty folder for one test, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command, returns its exit status; stdout+stderr go to *output.
int RunCommand(const std::string& command, std::string* output = nullptr);

// Path of a built program (L2M_BINARY_DIR/<relative>).
std::string BinaryPath(const std::string& relative);

}  // namespace test
}  // namespace l2m

// Skips the current test with a clear message when ../shared is absent.
#define L2M_REQUIRE_SHARED(var)                                     \
  const std::string var = ::l2m::test::SharedDir();                 \
  if (var.empty()) {                                                \
    GTEST_SKIP() << "../shared (fixtures and data) not found; set " \
                    "L2M_SHARED_DIR to run this test";              \
  }
