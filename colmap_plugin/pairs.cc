#include "colmap_plugin/pairs.h"

#include "l2m_core/util/file.h"
#include "l2m_core/util/string.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace l2m {

void NormalizePairs(std::vector<ImagePair>* pairs) {
  for (auto& p : *pairs) {
    if (p.first > p.second) std::swap(p.first, p.second);
  }
  pairs->erase(
      std::remove_if(pairs->begin(),
                     pairs->end(),
                     [](const ImagePair& p) { return p.first == p.second; }),
      pairs->end());
  std::sort(pairs->begin(), pairs->end());
  pairs->erase(std::unique(pairs->begin(), pairs->end()), pairs->end());
}

std::vector<ImagePair> ExhaustivePairs(const std::vector<DbImage>& images) {
  std::vector<ImagePair> pairs;
  pairs.reserve(images.size() * (images.size() - 1) / 2);
  for (size_t i = 0; i < images.size(); ++i) {
    for (size_t j = i + 1; j < images.size(); ++j) {
      pairs.emplace_back(images[i].image_id, images[j].image_id);
    }
  }
  NormalizePairs(&pairs);
  return pairs;
}

std::vector<ImagePair> SequentialPairs(const std::vector<DbImage>& images,
                                       int overlap) {
  if (overlap < 1)
    throw std::invalid_argument("sequential overlap must be >= 1");
  std::vector<DbImage> sorted = images;
  std::sort(sorted.begin(),
            sorted.end(),
            [](const DbImage& a, const DbImage& b) { return a.name < b.name; });
  std::vector<ImagePair> pairs;
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (size_t j = i + 1;
         j < sorted.size() && j <= i + static_cast<size_t>(overlap);
         ++j) {
      pairs.emplace_back(sorted[i].image_id, sorted[j].image_id);
    }
  }
  NormalizePairs(&pairs);
  return pairs;
}

std::vector<ImagePair> PairsFromFile(const std::string& path,
                                     const std::vector<DbImage>& images) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("Cannot open pair file '" + path + "'");
  std::unordered_map<std::string, image_t> ids;
  for (const auto& im : images) ids[im.name] = im.image_id;
  std::vector<ImagePair> pairs;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    line = TrimString(line);
    if (line.empty() || line[0] == '#') continue;
    const auto fields = SplitString(line);
    if (fields.size() < 2) {
      throw std::runtime_error("Pair file '" + path + "', line " +
                               std::to_string(line_no) +
                               ": expected 'name1 name2', got '" + line + "'");
    }
    for (int k = 0; k < 2; ++k) {
      if (ids.count(fields[k]) == 0) {
        throw std::runtime_error(
            "Pair file '" + path + "', line " + std::to_string(line_no) +
            ": unknown image '" + fields[k] +
            "' (not in the database; names are relative to the image folder)");
      }
    }
    pairs.emplace_back(ids[fields[0]], ids[fields[1]]);
  }
  NormalizePairs(&pairs);
  return pairs;
}

void WritePairsFile(const std::string& path,
                    const std::vector<ImagePair>& pairs,
                    const std::vector<DbImage>& images) {
  std::unordered_map<image_t, std::string> names;
  for (const auto& im : images) names[im.image_id] = im.name;
  std::ostringstream out;
  for (const auto& p : pairs) {
    if (names.count(p.first) == 0 || names.count(p.second) == 0) {
      throw std::invalid_argument(
          "WritePairsFile: pair names an image id not in the database");
    }
    out << names[p.first] << " " << names[p.second] << "\n";
  }
  WriteFileAtomic(path, out.str());
}

}  // namespace l2m
