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

TEST(String, ParseNumbersWholeStringOnly) {
  double d = 0;
  EXPECT_TRUE(ParseDouble("3e-4", &d));
  EXPECT_DOUBLE_EQ(d, 3e-4);
  EXPECT_FALSE(ParseDouble("0.1x", &d));
  EXPECT_FALSE(ParseDouble("", &d));
  int64_t i = 0;
  EXPECT_TRUE(ParseInt64("-12", &i));
  EXPECT_EQ(i, -12);
  EXPECT_FALSE(ParseInt64("12.5", &i));
  EXPECT_FALSE(ParseInt64("four", &i));
}

}  // namespace
}  // namespace l2m
