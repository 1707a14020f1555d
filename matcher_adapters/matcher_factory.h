#pragma once

#include "matcher_adapters/flow_matcher.h"
#include "matcher_adapters/l2m_matcher.h"
#include "matcher_adapters/matcher.h"
#include "matcher_adapters/sift_matcher.h"

#include <memory>
#include <string>
#include <vector>

namespace l2m {

struct MatcherOptions {
  // One of KnownMatcherTypes().
  std::string type = "sift";
  SiftMatcherOptions sift;
  FlowMatcherOptions flow;
  L2mMatcherOptions l2m;

  // Checks the type and the options of that type only.
  bool Check(std::string* error = nullptr) const;
};

// The types CreateMatcher() knows, e.g. {"sift", "flow"}.
std::vector<std::string> KnownMatcherTypes();

// Throws std::invalid_argument for an unknown type (listing the known ones) or
// invalid options of the chosen type.
std::unique_ptr<Matcher> CreateMatcher(const MatcherOptions& options);

}  // namespace l2m
