#include "matcher_adapters/matcher_factory.h"

#include <stdexcept>

namespace l2m {
namespace {

std::string JoinTypes() {
  std::string joined;
  for (const std::string& type : KnownMatcherTypes()) {
    joined += (joined.empty() ? "" : ", ") + type;
  }
  return joined;
}

std::string UnknownTypeMessage(const std::string& type) {
  return "Unknown matcher type '" + type + "'; known types: " + JoinTypes();
}

}  // namespace

std::vector<std::string> KnownMatcherTypes() { return {"sift", "flow", "l2m"}; }

bool MatcherOptions::Check(std::string* error) const {
  if (type == "sift") return sift.Check(error);
  if (type == "flow") return flow.Check(error);
  if (type == "l2m") return l2m.Check(error);
  if (error != nullptr) *error = UnknownTypeMessage(type);
  return false;
}

std::unique_ptr<Matcher> CreateMatcher(const MatcherOptions& options) {
  // Each Create* checks its own options and throws std::invalid_argument.
  if (options.type == "sift") return CreateSiftMatcher(options.sift);
  if (options.type == "flow") return CreateFlowMatcher(options.flow);
  if (options.type == "l2m") return CreateL2mMatcher(options.l2m);
  throw std::invalid_argument(UnknownTypeMessage(options.type));
}

}  // namespace l2m
