#include "colmap_plugin/track_builder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

namespace l2m {
namespace {

struct Observation {
  float x, y, score;
  uint32_t pair_index;   // Index into the ordered pair list.
  uint32_t match_index;  // Index of the match in that pair.
};

struct Cluster {
  float seed_x, seed_y;
  double sum_w = 0, sum_wx = 0, sum_wy = 0;
};

int64_t CellKey(int cx, int cy) {
  return (static_cast<int64_t>(cx) << 32) ^ static_cast<uint32_t>(cy);
}

// Clusters the observations of one image. Returns the keypoint id of each
// observation (-1 when dropped by the cap), and fills keypoints/weights.
std::vector<int> ClusterImage(std::vector<Observation>* observations,
                              const TrackBuilderOptions& options,
                              std::vector<DbKeypoint>* keypoints,
                              size_t* num_dropped) {
  auto& obs = *observations;
  std::sort(
      obs.begin(), obs.end(), [](const Observation& a, const Observation& b) {
        if (a.score != b.score) return a.score > b.score;
        if (a.pair_index != b.pair_index) return a.pair_index < b.pair_index;
        return a.match_index < b.match_index;
      });
  const double r = options.merge_radius;
  const double r2 = r * r;
  std::vector<Cluster> clusters;
  std::unordered_map<int64_t, std::vector<int>> grid;
  std::vector<int> assignment(obs.size(), -1);
  for (size_t i = 0; i < obs.size(); ++i) {
    const Observation& o = obs[i];
    const int cx = static_cast<int>(std::floor(o.x / r));
    const int cy = static_cast<int>(std::floor(o.y / r));
    int best = -1;
    double best_d2 = r2;
    for (int dx = -1; dx <= 1; ++dx) {
      for (int dy = -1; dy <= 1; ++dy) {
        auto it = grid.find(CellKey(cx + dx, cy + dy));
        if (it == grid.end()) continue;
        for (int c : it->second) {
          const double ex = clusters[c].seed_x - o.x,
                       ey = clusters[c].seed_y - o.y;
          const double d2 = ex * ex + ey * ey;
          if (d2 < best_d2 || (d2 == best_d2 && best >= 0 && c < best)) {
            best_d2 = d2;
            best = c;
          }
        }
      }
    }
    if (best < 0) {
      best = static_cast<int>(clusters.size());
      clusters.push_back({o.x, o.y});
      grid[CellKey(cx, cy)].push_back(best);
    }
    // A zero score still counts a little so that positions stay defined.
    const double w = std::max<double>(o.score, 1e-6);
    Cluster& c = clusters[best];
    c.sum_w += w;
    c.sum_wx += w * o.x;
    c.sum_wy += w * o.y;
    assignment[i] = best;
  }
  // Cap: keep the heaviest clusters.
  std::vector<int> order(clusters.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<int> new_id(clusters.size(), -1);
  if (options.max_keypoints_per_image > 0 &&
      clusters.size() > static_cast<size_t>(options.max_keypoints_per_image)) {
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return clusters[a].sum_w > clusters[b].sum_w;
    });
    order.resize(options.max_keypoints_per_image);
    std::sort(order.begin(), order.end());
  }
  keypoints->clear();
  for (int c : order) {
    new_id[c] = static_cast<int>(keypoints->size());
    DbKeypoint kp;
    kp.x = static_cast<float>(clusters[c].sum_wx / clusters[c].sum_w);
    kp.y = static_cast<float>(clusters[c].sum_wy / clusters[c].sum_w);
    keypoints->push_back(kp);
  }
  for (auto& a : assignment) {
    a = new_id[a];
    if (a < 0) ++*num_dropped;
  }
  return assignment;
}

}  // namespace

bool TrackBuilderOptions::Check(std::string* error) const {
  if (!(merge_radius > 0)) {
    *error = "merge_radius must be > 0 pixels";
    return false;
  }
  if (max_keypoints_per_image < 0) {
    *error = "max_keypoints_per_image must be >= 0";
    return false;
  }
  return true;
}

TrackBuilderOptions::Mode TrackModeFromName(const std::string& name) {
  if (name == "merge") return TrackBuilderOptions::Mode::kMerge;
  if (name == "per_pair") return TrackBuilderOptions::Mode::kPerPair;
  throw std::invalid_argument("unknown track mode '" + name +
                              "' (use merge or per_pair)");
}

TrackBuilderResult BuildTracks(
    const std::map<ImagePair, RawPairMatches>& pair_matches,
    const TrackBuilderOptions& options) {
  std::string error;
  if (!options.Check(&error))
    throw std::invalid_argument("Tracks options: " + error);
  TrackBuilderResult result;
  std::vector<ImagePair> pairs;
  for (const auto& [pair, m] : pair_matches) {
    if (pair.first >= pair.second)
      throw std::invalid_argument(
          "BuildTracks: pairs must be (smaller id, larger id)");
    if (m.xy1.size() != 2 * m.size() || m.xy2.size() != 2 * m.size()) {
      throw std::invalid_argument("BuildTracks: inconsistent match arrays");
    }
    pairs.push_back(pair);
    result.stats.num_input_matches += m.size();
  }

  // kp_of[pair_index][side][match_index] = keypoint id in that image (-1:
  // none).
  std::vector<std::array<std::vector<int>, 2>> kp_of(pairs.size());
  for (size_t p = 0; p < pairs.size(); ++p) {
    const size_t n = pair_matches.at(pairs[p]).size();
    kp_of[p][0].assign(n, -1);
    kp_of[p][1].assign(n, -1);
  }

  if (options.mode == TrackBuilderOptions::Mode::kPerPair) {
    // The naive export: every pair appends its own keypoints to both images.
    for (size_t p = 0; p < pairs.size(); ++p) {
      const RawPairMatches& m = pair_matches.at(pairs[p]);
      for (int side = 0; side < 2; ++side) {
        auto& kps =
            result.keypoints[side == 0 ? pairs[p].first : pairs[p].second];
        const auto& xy = side == 0 ? m.xy1 : m.xy2;
        for (size_t i = 0; i < m.size(); ++i) {
          if (m.scores[i] < options.min_score) continue;
          kp_of[p][side][i] = static_cast<int>(kps.size());
          kps.push_back({xy[2 * i], xy[2 * i + 1], 1, 0});
        }
      }
    }
  } else {
    std::map<image_t, std::vector<Observation>> observations;
    for (size_t p = 0; p < pairs.size(); ++p) {
      const RawPairMatches& m = pair_matches.at(pairs[p]);
      for (size_t i = 0; i < m.size(); ++i) {
        if (m.scores[i] < options.min_score) continue;
        const float s = m.scores[i];
        observations[pairs[p].first].push_back({m.xy1[2 * i],
                                                m.xy1[2 * i + 1],
                                                s,
                                                static_cast<uint32_t>(p),
                                                static_cast<uint32_t>(2 * i)});
        observations[pairs[p].second].push_back(
            {m.xy2[2 * i],
             m.xy2[2 * i + 1],
             s,
             static_cast<uint32_t>(p),
             static_cast<uint32_t>(2 * i + 1)});
      }
    }
    for (auto& [image_id, obs] : observations) {
      result.stats.num_observations += obs.size();
      std::vector<DbKeypoint>& kps = result.keypoints[image_id];
      const std::vector<int> assignment =
          ClusterImage(&obs, options, &kps, &result.stats.num_dropped_by_cap);
      for (size_t k = 0; k < obs.size(); ++k) {
        // match_index encodes (match, side) as 2*i + side.
        const uint32_t side = obs[k].match_index & 1u;
        kp_of[obs[k].pair_index][side][obs[k].match_index >> 1] = assignment[k];
      }
    }
  }

  // One-to-one per pair, greedy by score; then drop unused keypoints.
  std::map<image_t, std::vector<char>> used;
  for (const auto& [image_id, kps] : result.keypoints)
    used[image_id].assign(kps.size(), 0);
  for (size_t p = 0; p < pairs.size(); ++p) {
    const RawPairMatches& m = pair_matches.at(pairs[p]);
    std::vector<uint32_t> order(m.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return m.scores[a] > m.scores[b];
    });
    std::unordered_map<int, char> taken1, taken2;
    std::vector<DbMatch>& out = result.matches[pairs[p]];
    for (uint32_t i : order) {
      const int k1 = kp_of[p][0][i], k2 = kp_of[p][1][i];
      if (k1 < 0 || k2 < 0) continue;
      if (taken1.count(k1) || taken2.count(k2)) {
        ++result.stats.num_dropped_one_to_one;
        continue;
      }
      taken1[k1] = taken2[k2] = 1;
      out.push_back({static_cast<point2D_t>(k1), static_cast<point2D_t>(k2)});
      used[pairs[p].first][k1] = 1;
      used[pairs[p].second][k2] = 1;
    }
    std::sort(out.begin(), out.end());
  }
  std::map<image_t, std::vector<int>> remap;
  for (auto& [image_id, kps] : result.keypoints) {
    std::vector<int>& r = remap[image_id];
    r.assign(kps.size(), -1);
    std::vector<DbKeypoint> kept;
    for (size_t k = 0; k < kps.size(); ++k) {
      if (used[image_id][k]) {
        r[k] = static_cast<int>(kept.size());
        kept.push_back(kps[k]);
      }
    }
    kps.swap(kept);
    result.stats.num_keypoints += kps.size();
  }
  for (auto& [pair, ms] : result.matches) {
    for (auto& mt : ms) {
      mt[0] = static_cast<point2D_t>(remap[pair.first][mt[0]]);
      mt[1] = static_cast<point2D_t>(remap[pair.second][mt[1]]);
    }
    result.stats.num_output_matches += ms.size();
  }
  return result;
}

}  // namespace l2m
