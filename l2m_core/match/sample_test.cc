#include "l2m_core/match/sample.h"

#include "l2m_core/match/kde_cpu.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace l2m {
namespace {

TEST(Kde, KnownValues) {
  // Two points 0.1 apart and one far away: exp(-0.01 / 0.02) = exp(-0.5).
  const torch::Tensor x = torch::tensor({{0.0f, 0.0f, 0.0f, 0.0f},
                                         {0.1f, 0.0f, 0.0f, 0.0f},
                                         {5.f, 5.f, 5.f, 5.f}});
  const torch::Tensor d = Kde(x);
  const double e = 1 + std::exp(-0.5);
  EXPECT_NEAR(d[0].item<float>(), e, 1e-6);
  EXPECT_NEAR(d[1].item<float>(), e, 1e-6);
  EXPECT_NEAR(d[2].item<float>(), 1.0, 1e-6);
}

TEST(Kde, MatchesDirectFormulaOnRandomPoints) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::rand({300, 4}) * 2 - 1;
  const torch::Tensor x64 = x.to(torch::kFloat64);
  const torch::Tensor sq = (x64.unsqueeze(1) - x64.unsqueeze(0)).pow(2).sum(-1);
  const torch::Tensor ref = (-sq / 0.02).exp().sum(-1);
  // The matmul-form cdist loses ~1e-5 relative (as in the reference).
  EXPECT_TRUE(torch::allclose(Kde(x).to(torch::kFloat64), ref, 1e-4, 1e-5));
}

// On CUDA (one kernel where l2m has its CUDA kernels) against the float64
// formula, with N not a multiple of the kernel's tile and D = 4 and 3;
// half inputs are rounded as on the CPU. Skips without a GPU (CI).
// The sync-free CUDA sampler draws what torch::multinomial draws from the
// same generator state.
TEST(Sample, CudaMultinomialEqualsTorch) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA);
  torch::manual_seed(1);
  at::Tensor w = torch::rand({200000}).to(cuda);
  w.masked_fill_(w < 0.3, 0);
  for (const int64_t n : {2, 5000, 20000}) {
    auto generator = [&] {
      at::Generator g = at::globalContext().defaultGenerator(cuda).clone();
      g.set_current_seed(7);
      return g;
    };
    const at::Tensor expected =
        torch::multinomial(w, n, /*replacement=*/false, generator());
    const at::Tensor got =
        internal::MultinomialWithoutReplacement(w, n, generator());
    EXPECT_TRUE(torch::equal(got, expected)) << "n = " << n;
  }
}

TEST(Kde, CudaMatchesDirectFormula) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(4);
  // 1000 points: one pass over all of them; 20 000 (the matcher's 4 × 5000
  // candidates): the points split over blocks, partial sums added after.
  for (const int64_t n : {1000, 20000}) {
    for (int64_t dim : {4, 3}) {
      const torch::Tensor x = torch::rand({n, dim}) * 2 - 1;
      const torch::Tensor x64 = x.to(torch::kFloat64);
      const int64_t rows = std::min<int64_t>(n, 1000);  // rows checked
      const torch::Tensor sq =
          (x64.slice(0, 0, rows).unsqueeze(1) - x64.unsqueeze(0))
              .pow(2)
              .sum(-1);
      const torch::Tensor ref = (-sq / 0.02).exp().sum(-1);
      KdeStats stats;
      const torch::Tensor got = Kde(x.cuda(), KdeOptions(), &stats);
      ASSERT_EQ(got.device().type(), torch::kCUDA);
      ASSERT_EQ(got.size(0), n);
      const double err =
          ((got.slice(0, 0, rows).cpu().to(torch::kFloat64) - ref).abs() / ref)
              .max()
              .item<double>();
      std::printf("[kde cuda N=%lld D=%lld] max relative error %.3e\n",
                  static_cast<long long>(n),
                  static_cast<long long>(dim),
                  err);
      EXPECT_LT(err, 1e-5);
    }
  }
  KdeOptions half;
  half.half = true;
  const torch::Tensor x = torch::rand({500, 4}) * 2 - 1;
  const torch::Tensor on_gpu = Kde(x.cuda(), half).cpu().to(torch::kFloat);
  const torch::Tensor on_cpu = Kde(x, half);
  EXPECT_TRUE(torch::allclose(on_gpu, on_cpu, 2e-3, 1e-2));
}

// The fast CPU form (direct float32 distances, vectorised exp) against the
// float64 formula, with N not a multiple of the vector width, two dims, and
// far-apart points whose terms underflow.
TEST(Kde, FastCpuFormMatchesDirectFormula) {
  torch::manual_seed(5);
  KdeOptions fast;
  fast.exact = false;
  for (int64_t dim : {4, 2}) {
    torch::Tensor x = torch::rand({1003, dim}) * 2 - 1;
    x[7] = torch::full({dim}, 40.0f);  // alone: density exactly 1
    const torch::Tensor x64 = x.to(torch::kFloat64);
    const torch::Tensor sq =
        (x64.unsqueeze(1) - x64.unsqueeze(0)).pow(2).sum(-1);
    const torch::Tensor ref = (-sq / 0.02).exp().sum(-1);
    const torch::Tensor got = Kde(x, fast);
    ASSERT_EQ(got.scalar_type(), torch::kFloat32);
    const double err =
        ((got.to(torch::kFloat64) - ref).abs() / ref).max().item<double>();
    std::printf("[kde fast cpu %s D=%lld] max relative error %.3e\n",
                internal::KdeDensityCpuKind(),
                static_cast<long long>(dim),
                err);
    EXPECT_LT(err, 1e-5);
    EXPECT_FLOAT_EQ(got[7].item<float>(), 1.0f);
  }
}

TEST(Kde, ChunkingDoesNotChangeTheResult) {
  torch::manual_seed(2);
  const torch::Tensor x = torch::rand({1000, 4}) * 2 - 1;
  KdeStats full_stats, chunk_stats;
  const torch::Tensor full = Kde(x, KdeOptions(), &full_stats);
  EXPECT_EQ(full_stats.num_chunks, 1);
  KdeOptions small;
  small.max_chunk_elements = 1000 * 7;  // 7 rows per block
  const torch::Tensor chunked = Kde(x, small, &chunk_stats);
  EXPECT_EQ(chunk_stats.max_chunk_rows, 7);
  EXPECT_EQ(chunk_stats.num_chunks, (1000 + 6) / 7);
  EXPECT_LE(chunk_stats.max_chunk_elements, small.max_chunk_elements);
  const double diff = (full - chunked).abs().max().item<double>();
  std::cout << "[ info   ] KDE full vs 7-row blocks: max |diff| = " << diff
            << std::endl;
  EXPECT_LE(diff, 1e-5);
}

TEST(Kde, HalfOnCpuRoundsInputs) {
  const torch::Tensor x =
      torch::tensor({{0.1001f, 0.2002f, 0.0f, 0.0f}, {0.3f, 0.0f, 0.0f, 0.0f}});
  KdeOptions half;
  half.half = true;
  const torch::Tensor got = Kde(x, half);
  EXPECT_EQ(got.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(got, Kde(x.to(torch::kHalf).to(torch::kFloat32))));
}

TEST(Kde, BadOptionsThrow) {
  KdeOptions o;
  o.std = 0;
  EXPECT_THROW(o.Check(), std::invalid_argument);
  o = KdeOptions();
  o.max_chunk_elements = 0;
  EXPECT_THROW(o.Check(), std::invalid_argument);
  SampleOptions s;
  s.sample_mode = "uniform";
  EXPECT_THROW(s.Check(), std::invalid_argument);
}

// Warp (H, W, 4) whose A coordinates are the pixel grid, B = A.
torch::Tensor GridWarp(int64_t h, int64_t w) {
  const torch::Tensor ys = torch::linspace(-1 + 1.0 / h, 1 - 1.0 / h, h);
  const torch::Tensor xs = torch::linspace(-1 + 1.0 / w, 1 - 1.0 / w, w);
  const auto g = torch::meshgrid({ys, xs}, "ij");
  return torch::stack({g[1], g[0], g[1], g[0]}, -1);
}

TEST(Sample, DeterministicGivenSeed) {
  const torch::Tensor warp = GridWarp(40, 80);
  const torch::Tensor cert = torch::rand({40, 80});
  SampleOptions o;
  o.seed = 7;
  const SampledMatches a = Sample(warp, cert, 300, o);
  const SampledMatches b = Sample(warp, cert, 300, o);
  ASSERT_EQ(a.matches.sizes(), (std::vector<int64_t>{300, 4}));
  ASSERT_EQ(a.certainty.sizes(), (std::vector<int64_t>{300}));
  EXPECT_TRUE(torch::equal(a.indices, b.indices));
  EXPECT_TRUE(torch::equal(a.matches, b.matches));
  o.seed = 8;
  EXPECT_FALSE(torch::equal(Sample(warp, cert, 300, o).indices, a.indices));
  // Returned rows are the warp rows at the returned indices, without repeats.
  EXPECT_TRUE(torch::equal(a.matches,
                           warp.reshape({-1, 4}).index_select(0, a.indices)));
  EXPECT_EQ(std::get<0>(at::_unique(a.indices)).numel(), 300);
  // The global generator is untouched by a seeded call.
  torch::manual_seed(5);
  const double r1 = torch::rand({1}).item<double>();
  torch::manual_seed(5);
  Sample(warp, cert, 10, o);
  EXPECT_EQ(torch::rand({1}).item<double>(), r1);
}

TEST(Sample, ThresholdAndZeroCertainty) {
  const torch::Tensor warp = GridWarp(20, 40);
  torch::Tensor cert = torch::zeros({20, 40});
  cert.narrow(1, 20, 20).fill_(0.06);  // right half above the 0.05 threshold
  cert[0][25] = 0.04;                  // one pixel below it
  SampleOptions o;
  o.seed = 1;
  o.sample_mode = "threshold";
  const SampledMatches s = Sample(warp, cert, 200, o);
  ASSERT_EQ(s.indices.numel(), 200);
  // Zero-certainty pixels are never drawn; thresholded ones report 1.
  EXPECT_TRUE(torch::all(s.indices.remainder(40) >= 20).item<bool>());
  const torch::Tensor thr = s.certainty;
  EXPECT_TRUE(torch::all((thr == 1) | (thr == 0.04f)).item<bool>());
  EXPECT_THROW(Sample(warp, torch::zeros({20, 40}), 10, o), std::runtime_error);
  EXPECT_THROW(Sample(warp, cert, 0, o), std::invalid_argument);
  EXPECT_THROW(Sample(warp, torch::ones({20, 41}), 10, o),
               std::invalid_argument);
}

TEST(Sample, BalancedPrefersSparseRegionsAndDropsIsolatedPoints) {
  // 2000 candidates: 1500 in a tight cluster, 450 in a wide cloud, 50 isolated
  // far outliers (density < 10 -> p = 1e-7, drawn only when nothing else is
  // left). All certainties are equal, so all are candidates.
  torch::manual_seed(3);
  const torch::Tensor cluster = torch::randn({1500, 4}) * 0.02f;
  const torch::Tensor cloud = torch::randn({450, 4}) * 0.15f + 0.5f;
  // Isolated points on a 5x5x2 lattice of spacing 0.45 (kernel ~exp(-10)).
  torch::Tensor isolated = torch::empty({50, 4});
  for (int i = 0; i < 50; ++i) {
    isolated[i] = torch::tensor({-0.9f + 0.45f * (i % 5),
                                 -0.9f + 0.45f * ((i / 5) % 5),
                                 -0.9f + 0.9f * (i / 25),
                                 -0.9f});
  }
  const torch::Tensor warp =
      torch::cat({cluster, cloud, isolated}).view({1, 2000, 4});
  const torch::Tensor cert = torch::full({1, 2000}, 0.5f);
  SampleOptions o;
  o.seed = 11;
  const torch::Tensor dens = Kde(warp.view({2000, 4}));
  const int64_t isolated_count =
      (dens.narrow(0, 1950, 50) < 10).sum().item<int64_t>();
  ASSERT_GE(isolated_count, 45);  // the construction does isolate them
  KdeStats stats;
  const SampledMatches s =
      Sample(warp, cert, 400, o, &stats);  // 1600 candidates
  ASSERT_EQ(s.indices.numel(), 400);
  EXPECT_EQ(stats.max_chunk_rows, (int64_t{1} << 20) / 1600);  // 3 blocks
  const int64_t from_cluster = (s.indices < 1500).sum().item<int64_t>();
  const int64_t from_cloud =
      ((s.indices >= 1500) & (s.indices < 1950)).sum().item<int64_t>();
  const int64_t from_isolated = (s.indices >= 1950).sum().item<int64_t>();
  std::cout << "[ info   ] balanced draw: cluster " << from_cluster
            << ", cloud " << from_cloud << ", isolated " << from_isolated
            << std::endl;
  // Uniform sampling would give 75% cluster; inverse density favours the cloud.
  EXPECT_LT(from_cluster, 300);
  EXPECT_GT(from_cloud, 100);
  EXPECT_LE(from_isolated, 5);
}

TEST(Sample, TenThousandFromFullSizeMapStaysInBoundedMemory) {
  // 560 x 1120 symmetric map as for the real model; num = 10 000 -> 40 000
  // candidates. The reference's single cdist would be 40 000^2 = 1.6e9
  // floats (6.4 GB); here every block is capped by max_chunk_elements.
  torch::manual_seed(4);
  const torch::Tensor warp =
      GridWarp(560, 1120) + torch::randn({560, 1120, 4}) * 0.01f;
  const torch::Tensor cert = torch::rand({560, 1120}) * 0.1f;
  SampleOptions o;
  o.seed = 0;
  KdeStats stats;
  const SampledMatches s = Sample(warp, cert, 10000, o, &stats);
  ASSERT_EQ(s.matches.sizes(), (std::vector<int64_t>{10000, 4}));
  EXPECT_LE(stats.max_chunk_elements, o.kde.max_chunk_elements);
  EXPECT_EQ(stats.max_chunk_rows, o.kde.max_chunk_elements / 40000);
  EXPECT_EQ(stats.num_chunks,
            (40000 + stats.max_chunk_rows - 1) / stats.max_chunk_rows);
  // One block is <= 4 MiB of float32 (26 rows), 1/1500 of the full matrix.
  EXPECT_LE(stats.max_chunk_elements * 4, int64_t{4} << 20);
  EXPECT_LT(stats.max_chunk_elements * 1500, int64_t{40000} * 40000);
  EXPECT_EQ(std::get<0>(at::_unique(s.indices)).numel(), 10000);
}

}  // namespace
}  // namespace l2m
