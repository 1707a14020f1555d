#include "l2m_core/util/string.h"

#include <gtest/gtest.h>

namespace l2m {
namespace {

TEST(String, Split) {
  EXPECT_EQ(SplitString("  a b\tc  "),
            (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(SplitString("a,,b", ","), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(SplitString("").empty());
}

TEST(String, TrimAndAffixes) {
  EXPECT_EQ(TrimString(" \tx y\r\n"), "x y");
  EXPECT_EQ(TrimString("   "), "");
  EXPECT_TRUE(StartsWith("model.conv", "model."));
  EXPECT_FALSE(StartsWith("mo", "model."));
  EXPECT_TRUE(EndsWith("a.JPG", ".JPG"));
  EXPECT_EQ(ToLower("A.JpG"), "a.jpg");
}

}  // namespace
}  // namespace l2m
