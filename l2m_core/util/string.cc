#include "l2m_core/util/string.h"

#include <algorithm>
#include <cctype>

namespace l2m {

std::vector<std::string> SplitString(const std::string& text,
                                     const std::string& delims) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find_first_of(delims, start);
    const size_t stop = end == std::string::npos ? text.size() : end;
    if (stop > start) fields.push_back(text.substr(start, stop - start));
    start = stop + 1;
  }
  return fields;
}

std::string TrimString(const std::string& text) {
  const char* ws = " \t\r\n";
  const size_t first = text.find_first_not_of(ws);
  if (first == std::string::npos) return "";
  const size_t last = text.find_last_not_of(ws);
  return text.substr(first, last - first + 1);
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.size() >= prefix.size() &&
         text.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string ToLower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) {
    return std::tolower(c);
  });
  return text;
}

namespace {

// `parse` (std::stod / std::stoll) must consume the whole, non-empty text.
template <typename T, typename Parse>
bool ParseWhole(const std::string& text, T* value, Parse parse) {
  if (text.empty()) return false;
  size_t used = 0;
  try {
    *value = parse(text, &used);
  } catch (...) {
    return false;
  }
  return used == text.size();
}

}  // namespace

bool ParseDouble(const std::string& text, double* value) {
  return ParseWhole(text, value, [](const std::string& t, size_t* used) {
    return std::stod(t, used);
  });
}

bool ParseInt64(const std::string& text, int64_t* value) {
  return ParseWhole(text, value, [](const std::string& t, size_t* used) {
    return static_cast<int64_t>(std::stoll(t, used));
  });
}

}  // namespace l2m
