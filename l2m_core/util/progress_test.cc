#include "l2m_core/util/progress.h"

#include <gtest/gtest.h>

#include <sstream>

namespace l2m {
namespace {

TEST(Progress, FormatDuration) {
  EXPECT_EQ(Progress::FormatDuration(12.4), "12s");
  EXPECT_EQ(Progress::FormatDuration(185), "3m05s");
  EXPECT_EQ(Progress::FormatDuration(3725), "1h02m");
  EXPECT_EQ(Progress::FormatDuration(-1), "?");
}

TEST(Progress, FormatLineShowsRateAndEta) {
  // 25 of 100 in 10 s: 2.5/s, 75 left -> 30 s.
  EXPECT_EQ(Progress::FormatLine("match", 25, 100, 10.0),
            "match: 25/100 (25.0%) 2.50/s, ETA 30s");
  EXPECT_EQ(Progress::FormatLine("match", 100, 100, 10.0),
            "match: 100/100 (100.0%) 10.00/s, ETA 0s");
}

TEST(Progress, PrintsFinalLineOnce) {
  std::ostringstream out;
  {
    Progress progress("stage", 3, &out, /*min_interval_s=*/1e9);
    progress.Add(3);
    progress.Finish();
  }
  const std::string text = out.str();
  EXPECT_NE(text.find("stage: 3/3"), std::string::npos) << text;
  EXPECT_EQ(text.find("stage:"), text.rfind("stage:")) << text;
}

}  // namespace
}  // namespace l2m
