#pragma once

#include <string>

namespace l2m {

// Reads a whole file; throws std::runtime_error naming the file on failure.
std::string ReadBinaryFile(const std::string& path);

// Writes `data` to `path` atomically: a temporary file beside it, fsync, then
// rename, so a reader never sees a half-written file and an existing file is
// only replaced once the new one is complete. Throws on failure.
void WriteFileAtomic(const std::string& path, const std::string& data);

bool FileExists(const std::string& path);
bool DirExists(const std::string& path);

}  // namespace l2m
