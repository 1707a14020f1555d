// Sampling / KDE parity against roma_parity/sampling (+ run_main final.*).
// MANIFEST section 9: inputs are run_main final.warp (80, 320, 4) and
// final.certainty (80, 320); the KDE was computed in float32 on CPU.

#include "l2m_core/match/sample.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace l2m {
namespace {

class SamplingParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string shared = test::SharedDir();
    if (shared.empty()) GTEST_SKIP() << "../shared not found";
    const std::string dir = shared + "/fixtures/roma_parity";
    sampling_ = test::TensorFixture::Load(dir + "/sampling");
    const test::TensorFixture run_main =
        test::TensorFixture::Load(dir + "/run_main");
    warp_ = run_main.Get("final.warp");
    cert_ = run_main.Get("final.certainty");
  }
  torch::Tensor Thresholded() const {
    torch::Tensor c = cert_.reshape({-1}).clone();
    c.masked_fill_(c > 0.05, 1);
    return c;
  }
  test::TensorFixture sampling_;
  torch::Tensor warp_, cert_;
};

// max |a - b| / max(1, |b|) elementwise, and max |a - b|.
std::pair<double, double> Errors(const torch::Tensor& a,
                                 const torch::Tensor& b) {
  const torch::Tensor d = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs();
  const torch::Tensor rel = d / b.to(torch::kFloat64).abs().clamp_min(1);
  return {d.max().item<double>(), rel.max().item<double>()};
}

TEST_F(SamplingParity, ThresholdCount) {
  EXPECT_EQ((cert_ > 0.05).sum().item<int64_t>(), 13811);
  EXPECT_EQ((Thresholded() == 1).sum().item<int64_t>(), 13811);
}

TEST_F(SamplingParity, KdeEqualsFixture) {
  for (const char* n : {"200", "4000"}) {
    const torch::Tensor idx = sampling_.Get(std::string("idx") + n);
    const torch::Tensor matches = sampling_.Get(std::string("matches") + n);
    ASSERT_TRUE(
        torch::equal(matches, warp_.reshape({-1, 4}).index_select(0, idx)));
    const torch::Tensor ref = sampling_.Get(std::string("kde") + n + "_fp32");
    const torch::Tensor p_ref = sampling_.Get(std::string("p") + n);
    // Default blocks (one block here) and small blocks (many).
    for (int64_t max_elems : {int64_t{1} << 24, int64_t{4000} * 13}) {
      KdeOptions o;
      o.max_chunk_elements = max_elems;
      KdeStats stats;
      const torch::Tensor kde = Kde(matches, o, &stats);
      const auto [abs_err, rel_err] = Errors(kde, ref);
      std::cout << "[ parity ] kde" << n << " (" << stats.num_chunks
                << " blocks): max abs err " << abs_err << ", max rel err "
                << rel_err << ", bit-exact " << torch::equal(kde, ref)
                << std::endl;
      EXPECT_LE(rel_err, 1e-5) << n;
      torch::Tensor p = (kde + 1).reciprocal();
      p.masked_fill_(kde < 10, 1e-7);
      EXPECT_TRUE(torch::equal(kde < 10, ref < 10)) << n;
      EXPECT_LE(Errors(p, p_ref).first, 1e-7) << n;
    }
  }
  EXPECT_EQ((sampling_.Get("kde4000_fp32") >= 10).sum().item<int64_t>(), 3760);
}

TEST_F(SamplingParity, HalfRoundedInputs) {
  KdeOptions o;
  o.half = true;
  const torch::Tensor kde = Kde(sampling_.Get("matches200"), o);
  const auto [abs_err, rel_err] =
      Errors(kde, sampling_.Get("kde200_halfrounded_inputs_fp32"));
  std::cout << "[ parity ] kde200 half-rounded inputs: max abs err " << abs_err
            << std::endl;
  EXPECT_LE(rel_err, 1e-5);
}

TEST_F(SamplingParity, CandidateDrawsReproduceTorchMultinomial) {
  // torch.multinomial(thresholded, n, replacement=False,
  //                   generator=torch.Generator().manual_seed(2024)), 200 then
  //                   4000.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2024);
  const torch::Tensor c = Thresholded();
  const torch::Tensor idx200 = torch::multinomial(c, 200, false, gen);
  const torch::Tensor idx4000 = torch::multinomial(c, 4000, false, gen);
  const bool same200 = torch::equal(idx200, sampling_.Get("idx200"));
  const bool same4000 = torch::equal(idx4000, sampling_.Get("idx4000"));
  std::cout << "[ parity ] multinomial draws identical to the fixture: idx200 "
            << same200 << ", idx4000 " << same4000 << std::endl;
  EXPECT_TRUE(same200);
  EXPECT_TRUE(same4000);
  // Sample()'s own seeded generator is the same stream.
  SampleOptions o;
  o.seed = 2024;
  o.sample_mode = "threshold";
  EXPECT_TRUE(torch::equal(Sample(warp_, cert_, 200, o).indices,
                           sampling_.Get("idx200")));
}

TEST_F(SamplingParity, SampleSeed0AndStatistics) {
  // `torch.manual_seed(0); model.sample(warp, cert, num=1000)` (kde
  // half=False).
  torch::manual_seed(0);
  const SampledMatches s = Sample(warp_, cert_, 1000);
  ASSERT_EQ(s.matches.sizes(), (std::vector<int64_t>{1000, 4}));
  const bool same =
      torch::equal(s.matches, sampling_.Get("sample_seed0_matches")) &&
      torch::equal(s.certainty, sampling_.Get("sample_seed0_certainty"));
  std::cout << "[ parity ] sample(num=1000) after manual_seed(0) identical to "
               "the fixture: "
            << same << std::endl;
  EXPECT_TRUE(same);

  // Loose statistics over seeds 0..9 (stats.json
  // sampling.sample_num1000_10seeds: frac_cert_eq_1 0.985..0.994; coordinate
  // means x_A -0.064..-0.030, y_A -0.393..-0.357, x_B -0.217..-0.169, y_B
  // -0.300..-0.234; stds 0.50..0.57).
  for (uint64_t seed = 0; seed < 10; ++seed) {
    SampleOptions o;
    o.seed = seed;
    const SampledMatches r = Sample(warp_, cert_, 1000, o);
    ASSERT_EQ(r.indices.numel(), 1000);
    const double frac1 =
        (r.certainty == 1).to(torch::kFloat64).mean().item<double>();
    const torch::Tensor mean = r.matches.mean(0);
    const torch::Tensor std = r.matches.std(0);
    EXPECT_GE(frac1, 0.97) << seed;
    EXPECT_LE(frac1, 1.0) << seed;
    const double lo[4] = {-0.064, -0.393, -0.217, -0.300};
    const double hi[4] = {-0.030, -0.357, -0.169, -0.234};
    for (int k = 0; k < 4; ++k) {
      EXPECT_NEAR(mean[k].item<double>(),
                  0.5 * (lo[k] + hi[k]),
                  0.5 * (hi[k] - lo[k]) + 0.05)
          << "seed " << seed << " coord " << k;
      EXPECT_NEAR(std[k].item<double>(), 0.54, 0.06)
          << "seed " << seed << " coord " << k;
    }
  }
}

}  // namespace
}  // namespace l2m

namespace l2m {
namespace {

TEST_F(SamplingParity, SystemBlasCdistInfo) {
  // Informational: why Kde() does not call torch::cdist on the CPU. The
  // fixture's BLAS used FMA; this machine's BLAS may not.
  for (const char* n : {"200", "4000"}) {
    const torch::Tensor x = sampling_.Get(std::string("matches") + n);
    const torch::Tensor ref = sampling_.Get(std::string("kde") + n + "_fp32");
    const torch::Tensor d = (-torch::cdist(x, x).pow(2) / 0.02).exp().sum(-1);
    const auto [a, r] = Errors(d, ref);
    std::cout << "[ info   ] kde" << n
              << " via torch::cdist + system BLAS: max abs err " << a
              << ", max rel err " << r << std::endl;
  }
}

}  // namespace
}  // namespace l2m
