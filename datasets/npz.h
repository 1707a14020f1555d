#pragma once

// NumPy .npz archives: a zip of `<key>.npy` members (stored or deflated),
// read with libzip.

#include "datasets/npy.h"

#include <map>
#include <string>

namespace l2m {

// All arrays of an .npz file by key (member name without ".npy"). Throws
// std::runtime_error naming the file (and member) when it is missing, not a
// zip archive, or holds a malformed array.
std::map<std::string, NpyArray> ReadNpzArchive(const std::string& path);

// Writes `arrays` as an uncompressed .npz (np.savez layout), atomically.
void WriteNpzArchive(const std::string& path,
                     const std::map<std::string, NpyArray>& arrays);

// The array `key` of `arrays`; throws naming `path` and the keys present.
const NpyArray& NpzArray(const std::map<std::string, NpyArray>& arrays,
                         const std::string& key,
                         const std::string& path);

}  // namespace l2m
