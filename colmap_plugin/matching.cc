#include "colmap_plugin/matching.h"

#include "l2m_core/util/progress.h"
#include "matcher_adapters/image_io.h"

#include <future>
#include <iostream>
#include <list>
#include <random>
#include <stdexcept>
#include <unordered_map>

namespace l2m {
namespace {

// Small LRU cache of decoded images: pairs come sorted, so consecutive pairs
// share their first image.
class ImageCache {
 public:
  ImageCache(std::string image_dir,
             const std::vector<DbImage>& images,
             size_t capacity)
      : image_dir_(std::move(image_dir)),
        capacity_(std::max<size_t>(capacity, 2)) {
    for (const auto& im : images) names_[im.image_id] = im.name;
  }

  const MatcherImage& Get(image_t image_id) {
    auto it = entries_.find(image_id);
    if (it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
    MatcherImage image;
    auto pending = pending_.find(image_id);
    if (pending != pending_.end()) {
      std::future<MatcherImage> loading = std::move(pending->second);
      pending_.erase(pending);
      image = loading.get();  // rethrows a load error, naming the file
    } else {
      image = LoadMatcherImage(image_id, PathOf(image_id));
    }
    if (entries_.size() >= capacity_) {
      entries_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(image_id);
    return entries_
        .emplace(image_id, std::make_pair(std::move(image), order_.begin()))
        .first->second.first;
  }

  // Starts decoding `image_id` on a thread unless it is cached or already
  // under way, so that the next pair's images load while this pair matches
  // (on a GPU the decode is ~10 % of a pair's time).
  // Unknown ids are left to Get, which reports them.
  void Prefetch(image_t image_id) {
    if (entries_.count(image_id) != 0 || pending_.count(image_id) != 0 ||
        names_.count(image_id) == 0) {
      return;
    }
    const std::string path = PathOf(image_id);
    pending_.emplace(image_id, std::async(std::launch::async, [image_id, path] {
                       return LoadMatcherImage(image_id, path);
                     }));
  }

 private:
  std::string PathOf(image_t image_id) const {
    auto name = names_.find(image_id);
    if (name == names_.end())
      throw std::runtime_error("image id " + std::to_string(image_id) +
                               " is not in the database");
    return image_dir_ + "/" + name->second;
  }

  std::unordered_map<image_t, std::future<MatcherImage>> pending_;
  std::string image_dir_;
  size_t capacity_;
  std::unordered_map<image_t, std::string> names_;
  std::list<image_t> order_;
  std::unordered_map<image_t,
                     std::pair<MatcherImage, std::list<image_t>::iterator>>
      entries_;
};

void CheckMatcherMetadata(const std::string& matcher_key,
                          const MatchingOptions& options,
                          Database* database) {
  const auto stored = database->ReadMetadata("matcher");
  if (stored.has_value() && *stored != matcher_key) {
    if (!options.overwrite) {
      throw std::runtime_error("Database '" + database->path() +
                               "' already holds matches of matcher '" +
                               *stored + "', not '" + matcher_key +
                               "'. Use a new database, or pass "
                               "--Matching.overwrite 1 to replace them.");
    }
    Database::Transaction t(database);
    database->ClearKeypointsAndMatches();
    database->Exec("DELETE FROM l2m_raw_matches");
    t.Commit();
  }
  database->WriteMetadata("matcher", matcher_key);
}

}  // namespace

bool MatchingOptions::Check(std::string* error) const {
  if (dense_jitter_px < 0) {
    *error = "dense_jitter_px must be >= 0";
    return false;
  }
  if (image_cache_size < 2) {
    *error = "image_cache_size must be >= 2";
    return false;
  }
  return true;
}

MatchingSummary MatchPairs(const std::string& image_dir,
                           const std::vector<ImagePair>& pairs,
                           Matcher* matcher,
                           const MatchingOptions& options,
                           Database* database) {
  std::string error;
  if (!options.Check(&error))
    throw std::invalid_argument("Matching options: " + error);
  Timer timer;
  MatchingSummary summary;
  summary.num_pairs = pairs.size();
  summary.dense = matcher->IsDense() || options.as_dense;
  const std::string matcher_key =
      matcher->Name() + (matcher->IsDense() ? ""
                         : options.as_dense ? "/as_dense"
                                            : "/sparse");
  CheckMatcherMetadata(matcher_key, options, database);

  const std::vector<DbImage> images = database->ReadAllImages();
  ImageCache cache(image_dir, images, options.image_cache_size);

  if (!summary.dense) {
    // Features of every image the pairs need, once.
    std::vector<image_t> needed;
    for (const auto& p : pairs) {
      needed.push_back(p.first);
      needed.push_back(p.second);
    }
    std::sort(needed.begin(), needed.end());
    needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
    Progress progress("extract " + matcher->Name(),
                      static_cast<int64_t>(needed.size()));
    for (image_t id : needed) {
      progress.Add();
      if (database->ExistsKeypoints(id) && database->ExistsDescriptors(id))
        continue;
      const ImageFeatures f = matcher->Extract(cache.Get(id));
      std::vector<DbKeypoint> kps;
      kps.reserve(f.keypoints.size());
      for (const auto& k : f.keypoints)
        kps.push_back({k.x, k.y, k.scale, k.orientation});
      Database::Transaction t(database);
      database->WriteKeypoints(id, kps);
      database->WriteDescriptors(
          id, std::max(f.descriptor_dim, 1), f.descriptors);
      t.Commit();
    }
    progress.Finish();
  }

  std::unordered_map<image_t, ImageFeatures> feature_cache;  // Sparse only.
  auto features_of = [&](image_t id) -> const ImageFeatures& {
    auto it = feature_cache.find(id);
    if (it != feature_cache.end()) return it->second;
    if (feature_cache.size() > 64) feature_cache.clear();
    ImageFeatures f;
    if (options.as_dense) {
      f = matcher->Extract(cache.Get(id));
    } else {
      for (const auto& k : database->ReadKeypoints(id))
        f.keypoints.push_back({k.x, k.y, k.scale, k.orientation});
      f.descriptors = database->ReadDescriptors(id, &f.descriptor_dim);
    }
    return feature_cache.emplace(id, std::move(f)).first->second;
  };

  std::mt19937 rng(options.seed);
  std::uniform_real_distribution<float> jitter(
      -static_cast<float>(options.dense_jitter_px),
      static_cast<float>(options.dense_jitter_px));
  Progress progress("match " + matcher->Name(),
                    static_cast<int64_t>(pairs.size()));
  for (size_t k = 0; k < pairs.size(); ++k) {
    const auto [id1, id2] = pairs[k];
    progress.Add();
    // The next pair's images decode while this pair matches (unless it is
    // already matched: every prefetched image is taken by the next Get).
    if (matcher->IsDense() && k + 1 < pairs.size() &&
        !database->ExistsRawMatches(pairs[k + 1].first, pairs[k + 1].second)) {
      cache.Prefetch(pairs[k + 1].first);
      cache.Prefetch(pairs[k + 1].second);
    }
    const bool done = summary.dense ? database->ExistsRawMatches(id1, id2)
                                    : database->ExistsMatches(id1, id2);
    if (done) {
      ++summary.num_skipped;
      continue;
    }
    PairMatches m;
    if (matcher->IsDense()) {
      m = matcher->MatchDense(cache.Get(id1), cache.Get(id2));
    } else {
      m = matcher->MatchFeatures(features_of(id1), features_of(id2));
    }
    if (m.xy1.size() != 2 * m.size() || m.xy2.size() != 2 * m.size()) {
      throw std::runtime_error("matcher '" + matcher->Name() +
                               "' returned inconsistent match arrays");
    }
    Database::Transaction t(database);
    if (summary.dense) {
      RawPairMatches raw;
      raw.xy1 = std::move(m.xy1);
      raw.xy2 = std::move(m.xy2);
      raw.scores = std::move(m.scores);
      if (options.as_dense && options.dense_jitter_px > 0) {
        for (auto& v : raw.xy1) v += jitter(rng);
        for (auto& v : raw.xy2) v += jitter(rng);
      }
      summary.num_matches += raw.size();
      database->WriteRawMatches(id1, id2, raw);
    } else {
      std::vector<DbMatch> matches(m.idx1.size());
      for (size_t i = 0; i < matches.size(); ++i)
        matches[i] = {m.idx1[i], m.idx2[i]};
      summary.num_matches += matches.size();
      database->WriteMatches(id1, id2, matches);
    }
    t.Commit();
    ++summary.num_matched;
  }
  progress.Finish();
  summary.seconds = timer.ElapsedSeconds();
  return summary;
}

TrackBuilderStats BuildTracksInDatabase(const TrackBuilderOptions& options,
                                        Database* database) {
  std::map<ImagePair, RawPairMatches> pair_matches;
  for (image_pair_t pair_id : database->ReadRawMatchPairIds()) {
    const auto [id1, id2] = PairIdToImagePair(pair_id);
    pair_matches[{id1, id2}] = database->ReadRawMatches(id1, id2);
  }
  if (pair_matches.empty()) {
    throw std::runtime_error("Database '" + database->path() +
                             "' holds no dense matches to build tracks from "
                             "(run `l2m match` with a dense matcher first)");
  }
  const TrackBuilderResult result = BuildTracks(pair_matches, options);
  Database::Transaction t(database);
  database->ClearKeypointsAndMatches();
  for (const auto& [image_id, kps] : result.keypoints)
    database->WriteKeypoints(image_id, kps);
  for (const auto& [pair, ms] : result.matches)
    database->WriteMatches(pair.first, pair.second, ms);
  t.Commit();
  return result.stats;
}

}  // namespace l2m
