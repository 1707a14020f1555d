#include "l2m_core/util/file.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace l2m {
namespace {

TEST(File, AtomicWriteReplacesWholeFile) {
  test::TempDir dir;
  const std::string path = dir.File("a.txt");
  WriteFileAtomic(path, "first");
  WriteFileAtomic(path, "second");
  EXPECT_EQ(ReadBinaryFile(path), "second");
  // No temporary file is left behind.
  int num_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++num_files;
  }
  EXPECT_EQ(num_files, 1);
}

TEST(File, ErrorsNameTheFile) {
  try {
    ReadBinaryFile("/nonexistent/x.bin");
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.bin"),
              std::string::npos);
  }
  EXPECT_THROW(WriteFileAtomic("/nonexistent/dir/y.bin", "x"),
               std::runtime_error);
  EXPECT_FALSE(FileExists("/nonexistent/x.bin"));
  EXPECT_TRUE(DirExists("/"));
}

}  // namespace
}  // namespace l2m
