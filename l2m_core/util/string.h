#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace l2m {

// Splits on any of `delims`, dropping empty fields.
std::vector<std::string> SplitString(const std::string& text,
                                     const std::string& delims = " \t");
std::string TrimString(const std::string& text);
bool StartsWith(const std::string& text, const std::string& prefix);
bool EndsWith(const std::string& text, const std::string& suffix);
std::string ToLower(std::string text);
// Whole-string number parsing (no trailing characters); false on failure.
bool ParseDouble(const std::string& text, double* value);
bool ParseInt64(const std::string& text, int64_t* value);

}  // namespace l2m
