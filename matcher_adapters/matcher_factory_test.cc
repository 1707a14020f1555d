#include "matcher_adapters/matcher_factory.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace l2m {
namespace {

TEST(MatcherFactory, CreatesKnownTypes) {
  MatcherOptions options;
  EXPECT_TRUE(options.Check());
  auto sift = CreateMatcher(options);
  EXPECT_EQ(sift->Name(), "sift");
  EXPECT_FALSE(sift->IsDense());
  options.type = "flow";
  EXPECT_TRUE(options.Check());
  auto flow = CreateMatcher(options);
  EXPECT_EQ(flow->Name(), "flow");
  EXPECT_TRUE(flow->IsDense());
  // The interface's defaults for the calls a kind does not use.
  EXPECT_EQ(flow->Extract(MatcherImage()).keypoints.size(), 0u);
  EXPECT_EQ(sift->MatchDense(MatcherImage(), MatcherImage()).size(), 0u);
}

TEST(MatcherFactory, UnknownTypeListsKnownOnes) {
  MatcherOptions options;
  options.type = "superglue";
  std::string error;
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("superglue"), std::string::npos) << error;
  try {
    CreateMatcher(options);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'superglue'"), std::string::npos) << message;
    for (const std::string& type : KnownMatcherTypes()) {
      EXPECT_NE(message.find(type), std::string::npos) << message;
    }
  }
}

TEST(MatcherFactory, InvalidOptionsOfChosenTypeOnly) {
  MatcherOptions options;
  options.flow.grid_step = 0;  // Not used by "sift".
  EXPECT_TRUE(options.Check());
  EXPECT_NO_THROW(CreateMatcher(options));
  options.type = "flow";
  std::string error;
  EXPECT_FALSE(options.Check(&error));
  EXPECT_NE(error.find("grid_step"), std::string::npos) << error;
  EXPECT_THROW(CreateMatcher(options), std::invalid_argument);
}

}  // namespace
}  // namespace l2m
