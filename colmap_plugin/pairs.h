#pragma once

// Which image pairs to match. Pairs are (smaller id, larger id), unique,
// sorted, so that a pair list is the same whatever produced it.

#include "colmap_plugin/database.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace l2m {

typedef std::pair<image_t, image_t> ImagePair;

// All pairs.
std::vector<ImagePair> ExhaustivePairs(const std::vector<DbImage>& images);

// Each image with the next `overlap` images in name order (COLMAP's
// sequential matching without loop detection).
std::vector<ImagePair> SequentialPairs(const std::vector<DbImage>& images,
                                       int overlap);

// Pairs from a text file of `name1 name2` lines (hloc / COLMAP
// match_list format; '#' comments and blank lines ignored). Throws
// std::runtime_error naming the file and line for an unknown image name or a
// malformed line.
std::vector<ImagePair> PairsFromFile(const std::string& path,
                                     const std::vector<DbImage>& images);

// Writes `name1 name2` lines (atomically).
void WritePairsFile(const std::string& path,
                    const std::vector<ImagePair>& pairs,
                    const std::vector<DbImage>& images);

// Sorts, orders each pair (smaller id first), drops self-pairs and duplicates.
void NormalizePairs(std::vector<ImagePair>* pairs);

}  // namespace l2m
