#include "colmap_plugin/track_builder.h"

#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <random>
#include <set>

namespace l2m {
namespace {

// Synthetic scene: `num_tracks` true tracks; track t is seen in image i with
// probability `visibility` at a position that every pair reports with its
// own sub-pixel jitter, as a dense matcher would.
struct SyntheticScene {
  int num_images = 6;
  int num_tracks = 400;
  std::map<ImagePair, RawPairMatches> pair_matches;
  // truth[pair][match] = track id.
  std::map<ImagePair, std::vector<int>> truth;
  std::vector<std::vector<bool>> visible;
};

SyntheticScene MakeScene(double jitter_px, unsigned seed = 1) {
  SyntheticScene scene;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pos(5, 995), jit(-jitter_px, jitter_px),
      score(0.3f, 1.0f);
  std::bernoulli_distribution vis(0.7);
  std::vector<std::vector<std::array<float, 2>>> xy(scene.num_tracks);
  scene.visible.assign(scene.num_tracks, std::vector<bool>(scene.num_images));
  for (int t = 0; t < scene.num_tracks; ++t) {
    // Tracks at least 10 px apart in image 0's layout: a grid + offsets per
    // image.
    for (int i = 0; i < scene.num_images; ++i) {
      xy[t].push_back({static_cast<float>(20 * (t % 40) + 10 + 3 * i),
                       static_cast<float>(20 * (t / 40) + 10 + 2 * i)});
      scene.visible[t][i] = vis(rng);
    }
  }
  for (int i = 1; i <= scene.num_images; ++i) {
    for (int j = i + 1; j <= scene.num_images; ++j) {
      RawPairMatches& m = scene.pair_matches[{i, j}];
      for (int t = 0; t < scene.num_tracks; ++t) {
        if (!scene.visible[t][i - 1] || !scene.visible[t][j - 1]) continue;
        m.Add(xy[t][i - 1][0] + jit(rng),
              xy[t][i - 1][1] + jit(rng),
              xy[t][j - 1][0] + jit(rng),
              xy[t][j - 1][1] + jit(rng),
              score(rng));
        scene.truth[{i, j}].push_back(t);
      }
    }
  }
  return scene;
}

// Union-find over (image, keypoint) nodes joined by the output matches;
// returns, per component, its size, and checks its purity against the truth.
struct TrackStats {
  double mean_track_length = 0;
  double purity =
      0;  // Fraction of matches whose two keypoints carry the same true track.
  size_t num_tracks = 0;
};

TrackStats Analyse(const SyntheticScene& scene,
                   const TrackBuilderResult& result) {
  std::map<std::pair<image_t, point2D_t>, int> node_id;
  std::vector<int> parent;
  auto node = [&](image_t im, point2D_t kp) {
    auto [it, inserted] =
        node_id.try_emplace({im, kp}, static_cast<int>(parent.size()));
    if (inserted) parent.push_back(it->second);
    return it->second;
  };
  std::function<int(int)> find = [&](int x) {
    return parent[x] == x ? x : parent[x] = find(parent[x]);
  };
  // Keypoint -> true track, from the first match that uses it.
  std::map<std::pair<image_t, point2D_t>, int> kp_track;
  size_t good = 0, total = 0;
  for (const auto& [pair, ms] : result.matches) {
    for (const auto& m : ms) {
      const int a = node(pair.first, m[0]), b = node(pair.second, m[1]);
      parent[find(a)] = find(b);
    }
  }
  // Purity: a keypoint should hold one true track; measure by position.
  for (const auto& [pair, ms] : result.matches) {
    const auto& kps1 = result.keypoints.at(pair.first);
    const auto& kps2 = result.keypoints.at(pair.second);
    for (const auto& m : ms) {
      // Recover each keypoint's true track by its grid position.
      const int i = static_cast<int>(pair.first) - 1,
                j = static_cast<int>(pair.second) - 1;
      const int t1 =
          static_cast<int>(std::lround((kps1[m[0]].y - 10 - 2 * i) / 20)) * 40 +
          static_cast<int>(std::lround((kps1[m[0]].x - 10 - 3 * i) / 20));
      const int t2 =
          static_cast<int>(std::lround((kps2[m[1]].y - 10 - 2 * j) / 20)) * 40 +
          static_cast<int>(std::lround((kps2[m[1]].x - 10 - 3 * j) / 20));
      good += t1 == t2;
      ++total;
    }
  }
  std::map<int, int> sizes;
  for (size_t n = 0; n < parent.size(); ++n) ++sizes[find(static_cast<int>(n))];
  TrackStats stats;
  stats.num_tracks = sizes.size();
  double sum = 0;
  for (const auto& [root, size] : sizes) sum += size;
  stats.mean_track_length = sizes.empty() ? 0 : sum / sizes.size();
  stats.purity = total == 0 ? 0 : static_cast<double>(good) / total;
  return stats;
}

double TrueMeanTrackLength(const SyntheticScene& scene) {
  double sum = 0;
  int n = 0;
  for (const auto& v : scene.visible) {
    const int c = static_cast<int>(std::count(v.begin(), v.end(), true));
    if (c >= 2) {
      sum += c;
      ++n;
    }
  }
  return sum / n;
}

TEST(TrackBuilder, MergeRecoversMultiViewTracks) {
  const SyntheticScene scene = MakeScene(/*jitter_px=*/0.4);
  TrackBuilderOptions options;
  options.merge_radius = 2.0;
  const TrackBuilderResult result = BuildTracks(scene.pair_matches, options);
  const TrackStats stats = Analyse(scene, result);
  const double truth = TrueMeanTrackLength(scene);
  EXPECT_GT(truth, 3.5);
  EXPECT_NEAR(stats.mean_track_length, truth, 0.05 * truth);
  EXPECT_GT(stats.purity, 0.999);
  // Keypoints land on the true positions (jitter averages out).
  const auto& kps = result.keypoints.at(1);
  ASSERT_FALSE(kps.empty());
  for (const auto& kp : kps) {
    EXPECT_NEAR(std::remainder(kp.x - 10, 20.f), 0.f, 0.45f);
  }
}

TEST(TrackBuilder, PerPairModeGivesTwoViewTracks) {
  const SyntheticScene scene = MakeScene(0.4);
  TrackBuilderOptions options;
  options.mode = TrackBuilderOptions::Mode::kPerPair;
  const TrackStats stats =
      Analyse(scene, BuildTracks(scene.pair_matches, options));
  EXPECT_DOUBLE_EQ(stats.mean_track_length, 2.0);
}

TEST(TrackBuilder, MatchesAreOneToOnePerPair) {
  SyntheticScene scene = MakeScene(0.2);
  // Duplicate every match of pair (1,2) with a slightly moved copy: it merges
  // into the same keypoints and must not give a second match.
  RawPairMatches& m = scene.pair_matches[{1, 2}];
  const size_t n = m.size();
  for (size_t i = 0; i < n; ++i) {
    m.Add(m.xy1[2 * i] + 0.3f,
          m.xy1[2 * i + 1],
          m.xy2[2 * i],
          m.xy2[2 * i + 1] - 0.3f,
          m.scores[i] * 0.5f);
  }
  const TrackBuilderResult result = BuildTracks(scene.pair_matches, {});
  for (const auto& [pair, ms] : result.matches) {
    std::set<point2D_t> a, b;
    for (const auto& mt : ms) {
      EXPECT_TRUE(a.insert(mt[0]).second) << pair.first << "-" << pair.second;
      EXPECT_TRUE(b.insert(mt[1]).second);
      EXPECT_LT(mt[0], result.keypoints.at(pair.first).size());
      EXPECT_LT(mt[1], result.keypoints.at(pair.second).size());
    }
  }
  EXPECT_EQ(result.matches.at({1, 2}).size(), n);
  EXPECT_GE(result.stats.num_dropped_one_to_one, n);
}

TEST(TrackBuilder, IndependentOfPairOrderAndCapsKeypoints) {
  const SyntheticScene scene = MakeScene(0.4);
  TrackBuilderOptions options;
  options.max_keypoints_per_image = 100;
  const TrackBuilderResult a = BuildTracks(scene.pair_matches, options);
  for (const auto& [image_id, kps] : a.keypoints) EXPECT_LE(kps.size(), 100u);
  EXPECT_GT(a.stats.num_dropped_by_cap, 0u);
  // Same input built again: identical output (deterministic).
  const TrackBuilderResult b = BuildTracks(scene.pair_matches, options);
  EXPECT_EQ(a.matches, b.matches);
}

TEST(TrackBuilder, RejectsBadOptions) {
  TrackBuilderOptions options;
  options.merge_radius = 0;
  EXPECT_THROW(BuildTracks({}, options), std::invalid_argument);
  EXPECT_THROW(TrackModeFromName("grid"), std::invalid_argument);
}

}  // namespace
}  // namespace l2m
