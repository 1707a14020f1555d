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

bool ParseDouble(const std::string& text, double* value) {
  if (text.empty()) return false;
  size_t used = 0;
  try {
    *value = std::stod(text, &used);
  } catch (...) {
    return false;
  }
  return used == text.size();
}

bool ParseInt64(const std::string& text, int64_t* value) {
  if (text.empty()) return false;
  size_t used = 0;
  try {
    *value = std::stoll(text, &used);
  } catch (...) {
    return false;
  }
  return used == text.size();
}

}  // namespace l2m
