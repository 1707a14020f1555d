// Small-graph forward vs the reference's stored tensors (fixtures/roma_parity,
// MANIFEST.md §6-7). Tolerance: max |ours − ref| ≤ 1e-4 · max|ref| + 1e-5 per
// tensor; certainty skips the pixels flagged final.ambiguous (within 1e-4 of
// the |warp| = 1 cut).
//
// Built twice: as model_parity_test on the CPU, and with L2M_PARITY_ON_CUDA
// as model_gpu_parity_test (label gpu) on CUDA in fp32 with TF32 off, where
// the goal is 1e-3 of each tensor's max; it skips without a CUDA device.

#include "l2m_core/model/gp.h"
#ifdef L2M_HAVE_CUDA_KERNELS
#include "l2m_core/model/bias_activation_cuda.h"
#include "l2m_core/model/finalize_cuda.h"
#include "l2m_core/model/gp_cuda.h"
#include "l2m_core/model/input_conv_cuda.h"
#include "l2m_core/model/layer_norm_cuda.h"
#include "l2m_core/model/local_correlation_cuda.h"
#include "l2m_core/model/max_pool_cuda.h"
#include "l2m_core/model/refiner_block_cuda.h"
#include "l2m_core/model/refiner_input_cuda.h"
#endif
#include "l2m_core/model/local_correlation.h"
#include "l2m_core/model/match_graph.h"
#include "l2m_core/model/model_util.h"
#include "l2m_core/model/regression_matcher.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace l2m {
namespace {

using test::TensorFixture;

#ifdef L2M_PARITY_ON_CUDA
constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-5;
torch::Device Device() { return torch::Device(torch::kCUDA); }
#define L2M_REQUIRE_DEVICE()                                             \
  if (!torch::cuda::is_available()) {                                    \
    GTEST_SKIP() << "no CUDA device: the GPU parity tests run on a GPU " \
                    "machine only";                                      \
  }                                                                      \
  at::globalContext().setAllowTF32CuBLAS(false);                         \
  at::globalContext().setAllowTF32CuDNN(false)
#else
constexpr double kRtol = 1e-4;
constexpr double kAtol = 1e-5;
torch::Device Device() { return torch::Device(torch::kCPU); }
#define L2M_REQUIRE_DEVICE() (void)0
#endif

std::string FixtureDir(const std::string& shared) {
  return shared + "/fixtures/roma_parity";
}

// Strict load: every parameter/buffer of `module` must be in `weights` with the
// same shape and dtype, and every tensor of `weights` must be used.
void LoadStrict(torch::nn::Module& module, const TensorFixture& weights) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  std::string errors;
  auto load = [&](const std::string& name, torch::Tensor& target) {
    if (!weights.Has(name)) {
      errors += "missing " + name + "\n";
      return;
    }
    const torch::Tensor& src = weights.Get(name);
    if (src.sizes() != target.sizes() ||
        src.scalar_type() != target.scalar_type()) {
      errors += "mismatch " + name + "\n";
      return;
    }
    target.copy_(src);
    used.insert(name);
  };
  for (auto& item : module.named_parameters(true))
    load(item.key(), item.value());
  for (auto& item : module.named_buffers(true)) load(item.key(), item.value());
  for (const std::string& name : weights.names()) {
    if (used.count(name) == 0 && errors.find(name) == std::string::npos)
      errors += "unexpected " + name + "\n";
  }
  if (!errors.empty())
    throw std::runtime_error("strict load failed:\n" + errors);
}

struct Comparison {
  double max_err = 0;
  double ref_max = 0;
  double tol = 0;
};

Comparison Compare(const torch::Tensor& got,
                   const torch::Tensor& ref,
                   const torch::Tensor& mask = {}) {
  Comparison c;
  auto diff = (got.to(torch::kCPU).to(torch::kFloat) - ref).abs();
  if (mask.defined()) diff = diff.masked_fill(mask, 0);
  c.max_err = diff.max().item<double>();
  c.ref_max = ref.abs().max().item<double>();
  c.tol = kRtol * c.ref_max + kAtol;
  return c;
}

class ModelParityTest : public ::testing::Test {
 protected:
  void LoadModel(const std::string& dir, bool upsample_preds) {
    config_ = LoadFixtureConfig(dir + "/config.json");
    config_.upsample_preds = upsample_preds;
    matcher_ = RegressionMatcher(config_);
    LoadStrict(*matcher_, TensorFixture::Load(dir + "/weights_matcher"));
    LoadStrict(*matcher_->dino(), TensorFixture::Load(dir + "/weights_dino"));
    matcher_->eval();
    matcher_->to(Device());
  }

  // Compares every stored tensor of `run` (except inputs) with the trace /
  // final outputs.
  void CheckRun(const std::string& dir, const std::string& run) {
    const TensorFixture ref = TensorFixture::Load(dir + "/" + run);
    torch::Tensor A, B, A_up, B_up;
    const bool has_inputs = ref.Has("in.coarse");
    if (has_inputs) {
      A = ref.Get("in.coarse").slice(0, 0, 1);
      B = ref.Get("in.coarse").slice(0, 1, 2);
      if (config_.upsample_preds) {
        A_up = ref.Get("in.upsample").slice(0, 0, 1);
        B_up = ref.Get("in.upsample").slice(0, 1, 2);
      }
    } else {
      // run_noup stores no inputs; its pass 1 is run_main's.
      const TensorFixture main = TensorFixture::Load(dir + "/run_main");
      A = main.Get("in.coarse").slice(0, 0, 1);
      B = main.Get("in.coarse").slice(0, 1, 2);
    }
    auto on = [](const torch::Tensor& t) {
      return t.defined() ? t.to(Device()) : t;
    };
    ModelTrace trace;
    const MatchResult result =
        matcher_->Match(on(A), on(B), on(A_up), on(B_up), &trace);
    const torch::Tensor ambiguous = ref.Get("final.ambiguous").to(torch::kBool);

    std::printf("[%s] %-26s %12s %12s %12s\n",
                run.c_str(),
                "tensor",
                "max|err|",
                "max|ref|",
                "tol");
    int compared = 0;
    for (const std::string& name : ref.names()) {
      if (name.rfind("in.", 0) == 0 || name == "final.ambiguous") continue;
      torch::Tensor got;
      torch::Tensor mask;
      if (name == "final.warp") {
        got = result.warp;
      } else if (name == "final.certainty") {
        got = result.certainty;
        mask = ambiguous;
      } else {
        auto it = trace.tensors.find(name);
        ASSERT_NE(it, trace.tensors.end()) << "not traced: " << name;
        got = it->second;
      }
      const torch::Tensor& expected = ref.Get(name);
      ASSERT_EQ(got.sizes(), expected.sizes()) << name;
      const Comparison c = Compare(got, expected, mask);
      std::printf("[%s] %-26s %12.3e %12.4g %12.3e%s\n",
                  run.c_str(),
                  name.c_str(),
                  c.max_err,
                  c.ref_max,
                  c.tol,
                  c.max_err <= c.tol ? "" : "  FAIL");
      EXPECT_LE(c.max_err, c.tol) << run << " " << name;
      ++compared;
    }
    std::printf(
        "[%s] %d tensors compared, %lld ambiguous pixels skipped for "
        "certainty\n",
        run.c_str(),
        compared,
        static_cast<long long>(ambiguous.sum().item<int64_t>()));
    std::fflush(stdout);
  }

  MatcherConfig config_;
  RegressionMatcher matcher_{nullptr};
};

TEST_F(ModelParityTest, RunMain) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  LoadModel(dir, /*upsample_preds=*/true);
  CheckRun(dir, "run_main");
}

TEST_F(ModelParityTest, RunNoUpsample) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  LoadModel(dir, /*upsample_preds=*/false);
  CheckRun(dir, "run_noup");
}

TEST_F(ModelParityTest, RunNormalized) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  LoadModel(dir, /*upsample_preds=*/true);
  CheckRun(dir, "run_norm");
}

// BatchNorms folded into the convs and channels-last weights (what
// OptimizeForInference does for speed) stay within the same tolerance.
TEST_F(ModelParityTest, OptimizedForInference) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  LoadModel(dir, /*upsample_preds=*/true);
  matcher_->OptimizeForInference(/*channels_last=*/true);
  CheckRun(dir, "run_main");
}

// The batched form runs pairs of equal size in one batch and gives each pair's
// single result.
TEST_F(ModelParityTest, BatchedMatchesSingle) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  LoadModel(dir, /*upsample_preds=*/true);
  const TensorFixture ref = TensorFixture::Load(dir + "/run_main");
  const torch::Tensor& c = ref.Get("in.coarse");
  const torch::Tensor& u = ref.Get("in.upsample");
  // Pairs (A, B) and (B, A).
  auto A = torch::cat({c.slice(0, 0, 1), c.slice(0, 1, 2)});
  auto B = torch::cat({c.slice(0, 1, 2), c.slice(0, 0, 1)});
  auto A_up = torch::cat({u.slice(0, 0, 1), u.slice(0, 1, 2)});
  auto B_up = torch::cat({u.slice(0, 1, 2), u.slice(0, 0, 1)});
  const MatchResult batched = matcher_->MatchBatched(
      A.to(Device()), B.to(Device()), A_up.to(Device()), B_up.to(Device()));
  ASSERT_EQ(batched.warp.sizes(), (std::vector<int64_t>{2, 80, 320, 4}));
  ASSERT_EQ(batched.certainty.sizes(), (std::vector<int64_t>{2, 80, 320}));
  const torch::Tensor ambiguous = ref.Get("final.ambiguous").to(torch::kBool);
  const Comparison w = Compare(batched.warp[0], ref.Get("final.warp"));
  const Comparison k =
      Compare(batched.certainty[0], ref.Get("final.certainty"), ambiguous);
  std::printf(
      "[batched] pair 0 warp %.3e, certainty %.3e\n", w.max_err, k.max_err);
  EXPECT_LE(w.max_err, w.tol);
  EXPECT_LE(k.max_err, k.tol);
  // Pair 1 is pair 0 mirrored: its left half is pair 0's right half with the
  // coordinate pairs swapped.
  const int64_t W = 160;
  auto mirrored = torch::cat({batched.warp[1].slice(1, W).slice(2, 2, 4),
                              batched.warp[1].slice(1, W).slice(2, 0, 2)},
                             2);
  const Comparison m = Compare(mirrored, ref.Get("final.warp").slice(1, 0, W));
  std::printf("[batched] pair 1 (mirrored) warp %.3e\n", m.max_err);
  EXPECT_LE(m.max_err, m.tol);
}

// MatchGraph gives the eager results bit for bit: on CUDA the first call
// warms up, the second captures and replays, the third replays, in fp32 and
// under fp16 autocast; on the CPU it runs eagerly.
TEST_F(ModelParityTest, MatchGraphEqualsEager) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  LoadModel(dir, /*upsample_preds=*/true);
  matcher_->OptimizeForInference(/*channels_last=*/true);
  const TensorFixture ref = TensorFixture::Load(dir + "/run_main");
  const torch::Tensor c = ref.Get("in.coarse").to(Device());
  const torch::Tensor u = ref.Get("in.upsample").to(Device());
  const bool cuda = Device().is_cuda();
  for (const at::ScalarType dtype : {at::kFloat, at::kHalf}) {
    if (dtype == at::kHalf && !cuda) continue;
    std::optional<CudaAutocast> autocast;
    if (dtype == at::kHalf) autocast.emplace(dtype);
    MatchGraph graph(matcher_);
    for (int call = 0; call < 3; ++call) {
      // Inputs change between calls: a replay must read the new ones.
      const torch::Tensor A = c.slice(0, call % 2, call % 2 + 1),
                          B = c.slice(0, 1 - call % 2, 2 - call % 2);
      const torch::Tensor A_up = u.slice(0, call % 2, call % 2 + 1),
                          B_up = u.slice(0, 1 - call % 2, 2 - call % 2);
      const MatchResult eager = matcher_->Match(A, B, A_up, B_up);
      const MatchResult g = graph.Match(A, B, A_up, B_up);
      EXPECT_EQ(graph.last_replayed(), cuda && call >= 1) << "call " << call;
      EXPECT_TRUE(torch::equal(g.warp, eager.warp))
          << "dtype " << dtype << ", call " << call;
      EXPECT_TRUE(torch::equal(g.certainty, eager.certainty))
          << "dtype " << dtype << ", call " << call;
    }
  }
}

// A GP-like SPD matrix: the cosine kernel of `batch` random point sets of n
// points in `dim` dimensions, plus 0.1 I (the GP's sigma_noise).
torch::Tensor SpdKernelMatrix(int64_t batch,
                              int64_t n,
                              int64_t dim,
                              const torch::TensorOptions& opts) {
  const torch::Tensor y = torch::randn({batch, n, dim}, opts);
  return CosKernel(y, y, 0.2) + 0.1 * torch::eye(n, opts).unsqueeze(0);
}

// The GP's block substitution solves as cholesky_solve does, within fp32
// rounding, on a kernel matrix of the real size (n = 1600, 8 blocks of 200).
TEST(ModelParityGp, BlockCholeskySolveMatchesCholeskySolve) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const int64_t n = 1600, m = 64;
  const auto opts = torch::dtype(torch::kFloat).device(Device());
  const torch::Tensor A = SpdKernelMatrix(2, n, 32, opts);
  const torch::Tensor f = torch::randn({2, n, m}, opts);
  const torch::Tensor L = torch::linalg_cholesky(A);
  const torch::Tensor ref =
      torch::cholesky_solve(f.to(torch::kDouble), L.to(torch::kDouble));
  for (const int64_t block : {n, int64_t{200}, int64_t{320}}) {
    const torch::Tensor x = BlockCholeskySolve(L, f, block);
    const double err = (x.to(torch::kDouble) - ref).abs().max().item<double>() /
                       ref.abs().max().item<double>();
    const torch::Tensor fp32 = torch::cholesky_solve(f, L);
    const double fp32_err =
        (fp32.to(torch::kDouble) - ref).abs().max().item<double>() /
        ref.abs().max().item<double>();
    std::printf("[gp] block %ld: rel err %.2e (cholesky_solve fp32 %.2e)\n",
                static_cast<long>(block),
                err,
                fp32_err);
    // Same order as LAPACK/cuSOLVER's own fp32 solve.
    EXPECT_LE(err, 10 * fp32_err + 1e-6) << "block " << block;
  }
  EXPECT_THROW(BlockCholeskySolve(L, f, 300), std::invalid_argument);
}

// The left-looking block factorisation gives cuSOLVER/LAPACK's factor within
// fp32 rounding, zero above the diagonal, and the diagonal blocks' inverses;
// the solve from it matches the one from L alone.
TEST(ModelParityGp, BlockCholeskyMatchesCholesky) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(1);
  const int64_t n = 1600, m = 64;
  const auto opts = torch::dtype(torch::kFloat).device(Device());
  torch::Tensor A = SpdKernelMatrix(3, n, 32, opts);
  const torch::Tensor ref = torch::linalg_cholesky(A.to(torch::kDouble));
  const double fp32_err = (torch::linalg_cholesky(A).to(torch::kDouble) - ref)
                              .abs()
                              .max()
                              .item<double>();
  // Garbage above the diagonal must not be read.
  A = A.tril() + torch::triu(torch::full_like(A, 1e4), 1);
  const torch::Tensor f = torch::randn({3, n, m}, opts);
  for (const int64_t block :
       {int64_t{100}, int64_t{160}, int64_t{200}, int64_t{320}, n}) {
    const BlockCholeskyFactor factor = BlockCholesky(A, block);
    const double err =
        (factor.L.to(torch::kDouble) - ref).abs().max().item<double>();
    std::printf(
        "[gp] factor block %ld: max err %.2e (linalg_cholesky fp32 %.2e)\n",
        static_cast<long>(block),
        err,
        fp32_err);
    EXPECT_LE(err, 10 * fp32_err + 1e-6) << "block " << block;
    EXPECT_EQ(torch::triu(factor.L, 1).abs().max().item<float>(), 0.f);
    ASSERT_EQ(factor.diagonal_inverse.sizes(),
              torch::IntArrayRef({3, n / block, block, block}));
    for (int64_t i = 0; i < n / block; ++i) {
      const torch::Tensor D = factor.L.slice(1, i * block, (i + 1) * block)
                                  .slice(2, i * block, (i + 1) * block);
      const torch::Tensor eye =
          torch::eye(block, opts).expand({3, block, block});
      EXPECT_LE((torch::bmm(factor.diagonal_inverse.select(1, i), D) - eye)
                    .abs()
                    .max()
                    .item<float>(),
                1e-4f)
          << "block " << block << ", diagonal block " << i;
    }
    const torch::Tensor x = BlockCholeskySolve(factor, f);
    const torch::Tensor x_from_L = BlockCholeskySolve(factor.L, f, block);
    EXPECT_LE((x - x_from_L).abs().max().item<float>(),
              1e-5f * x_from_L.abs().max().item<float>())
        << "block " << block;
  }
  EXPECT_THROW(BlockCholesky(A, 300), std::invalid_argument);
  EXPECT_THROW(BlockCholesky(A.slice(2, 0, 800), 200), std::invalid_argument);
}

// Training runs the GP with gradients on the device: the posterior's
// gradients reach pos_conv and the features, as on the CPU (the GP computes
// in float32 whatever its inputs; the CPU copy runs its double weights).
// (The CUDA block routes write into preallocated outputs, which autograd
// does not follow; batches of 2 and of more matrices take different routes.)
TEST(ModelParityGp, BackwardMatchesCpu) {
  L2M_REQUIRE_DEVICE();
  for (const int64_t B : {int64_t{2}, int64_t{3}}) {
    torch::manual_seed(4);
    GpConfig config;
    config.gp_dim = 16;
    config.use_cholesky = true;
    Gp gp(config), gp64(config);
    gp64->to(torch::kDouble);
    {
      torch::NoGradGuard no_grad;
      for (const auto& item : gp->named_parameters()) {
        gp64->named_parameters()[item.key()].copy_(item.value());
      }
    }
    gp->to(Device());
    const torch::Tensor x0 = torch::randn({B, 8, 6, 6});
    const torch::Tensor y0 = torch::randn({B, 8, 6, 6});
    const torch::Tensor w = torch::randn({B, 16, 6, 6});
    auto run = [&](Gp& model, torch::ScalarType dtype, torch::Device device) {
      // Copies, so that the inputs stay leaves of each run's own graph.
      torch::Tensor x = x0.to(device, dtype, false, true).requires_grad_(true);
      torch::Tensor y = y0.to(device, dtype, false, true).requires_grad_(true);
      (model->forward(x, y) * w.to(device, dtype)).sum().backward();
      return std::vector<torch::Tensor>{
          x.grad().cpu().to(torch::kDouble),
          y.grad().cpu().to(torch::kDouble),
          model->named_parameters()["pos_conv.weight"].grad().cpu().to(
              torch::kDouble)};
    };
    const auto grads = run(gp, torch::kFloat, Device());
    const auto ref = run(gp64, torch::kDouble, torch::kCPU);
    for (size_t i = 0; i < grads.size(); ++i) {
      const double err =
          ((grads[i] - ref[i]).abs().max() / ref[i].abs().max()).item<double>();
      EXPECT_LE(err, 1e-3) << "B " << B << ", gradient " << i;
    }
  }
}

// The Cholesky option of the GP stays within tolerance of the reference's
// matrix inverse.
TEST(ModelParityGp, CholeskyWithinTolerance) {
  L2M_REQUIRE_DEVICE();
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = FixtureDir(shared);
  const MatcherConfig config = LoadFixtureConfig(dir + "/config.json");
  const TensorFixture weights = TensorFixture::Load(dir + "/weights_matcher");
  const TensorFixture ref = TensorFixture::Load(dir + "/run_main");
  for (bool cholesky : {false, true}) {
    GpConfig gp_config = config.gp;
    gp_config.use_cholesky = cholesky;
    Gp gp(gp_config);
    gp->to(Device());
    {
      torch::NoGradGuard no_grad;
      gp->named_parameters()["pos_conv.weight"].copy_(
          weights.Get("decoder.gps.16.pos_conv.weight"));
      gp->named_parameters()["pos_conv.bias"].copy_(
          weights.Get("decoder.gps.16.pos_conv.bias"));
    }
    // Symmetric batch: the support of pair i is the query of the other one.
    const torch::Tensor q = ref.Get("p1.s16.proj_q").to(Device());
    const torch::Tensor s = torch::cat({q.slice(0, 1, 2), q.slice(0, 0, 1)});
    torch::NoGradGuard no_grad;
    const Comparison c = Compare(gp(q, s), ref.Get("p1.s16.gp_posterior"));
    std::printf("[gp %s] gp_posterior max|err| %.3e (tol %.3e)\n",
                cholesky ? "cholesky" : "inverse",
                c.max_err,
                c.tol);
    EXPECT_LE(c.max_err, c.tol);
    // Three copies of the batch: more than two systems take the batched
    // factorisation on CUDA (two are solved one by one).
    const Comparison c3 = Compare(
        gp(q.repeat({3, 1, 1, 1}), s.repeat({3, 1, 1, 1})).slice(0, 4, 6),
        ref.Get("p1.s16.gp_posterior"));
    std::printf("[gp %s, batch 6] gp_posterior max|err| %.3e\n",
                cholesky ? "cholesky" : "inverse",
                c3.max_err);
    EXPECT_LE(c3.max_err, c3.tol);
  }
}

// The CPU kernel (whole-pixel offsets share the bilinear weights) against
// one grid_sample per offset, as the reference computes it, with warp
// targets partly outside the support image (zero padding) and a NaN.
TEST(LocalCorrelationCpu, MatchesGridSamplePerOffset) {
  torch::manual_seed(0);
  namespace F = torch::nn::functional;
  const torch::Tensor f0 = torch::randn({2, 16, 12, 20});
  const torch::Tensor f1 = torch::randn({2, 16, 12, 20});
  torch::Tensor flow = torch::rand({2, 2, 12, 20}) * 2.4 - 1.2;
  flow[1][0][3][4] = std::numeric_limits<float>::quiet_NaN();
  for (int radius : {1, 3}) {
    const torch::Tensor got = LocalCorrelation(f0, f1, radius, flow);
    const int64_t n = 2 * radius + 1;
    std::vector<torch::Tensor> parts;
    for (int64_t k = 0; k < n * n; ++k) {
      const double dy = -2.0 * radius / 12 + (k / n) * 2.0 / 12;
      const double dx = -2.0 * radius / 20 + (k % n) * 2.0 / 20;
      auto grid =
          flow.permute({0, 2, 3, 1}) +
          torch::tensor({static_cast<float>(dx), static_cast<float>(dy)});
      auto window = F::grid_sample(
          f1, grid, F::GridSampleFuncOptions().align_corners(false));
      parts.push_back((f0 * window).sum(1) / 4.0);  // sqrt(C) = 4
    }
    const torch::Tensor ref = torch::stack(parts, 1);
    ASSERT_EQ(got.sizes(), ref.sizes());
    const torch::Tensor valid = ref.isfinite();
    const double err =
        (got - ref).abs().masked_select(valid).max().item<double>();
    std::printf("[local corr cpu r=%d] max|err| %.3e\n", radius, err);
    EXPECT_LT(err, 1e-5);
  }
}

// A support offset correlates query b with support image (b + offset) mod B:
// exactly the correlation with the support batch rolled into place, on the
// device the test runs on (the CUDA kernel reads at the offset; the CPU
// path rolls), fp32 and, on CUDA, fp16; out-of-range offsets are refused.
TEST(LocalCorrelation, SupportOffsetReadsTheRolledBatch) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(2);
  const auto opts = torch::dtype(torch::kFloat).device(Device());
  const torch::Tensor f0 = torch::randn({4, 64, 9, 13}, opts);
  const torch::Tensor f1 = torch::randn({4, 64, 9, 13}, opts);
  const torch::Tensor flow = torch::rand({4, 2, 9, 13}, opts) * 2.4 - 1.2;
  std::vector<at::ScalarType> dtypes = {torch::kFloat};
  if (f0.is_cuda()) dtypes.push_back(torch::kHalf);
  for (const auto dtype : dtypes) {
    for (const int64_t offset : {1, 2, 3}) {
      const torch::Tensor a = f0.to(dtype), b = f1.to(dtype);
      const torch::Tensor got = LocalCorrelation(a, b, 2, flow, offset);
      const torch::Tensor ref =
          LocalCorrelation(a, torch::roll(b, {-offset}, {0}), 2, flow);
      EXPECT_TRUE(torch::equal(got, ref)) << dtype << " offset " << offset;
    }
  }
  EXPECT_THROW(LocalCorrelation(f0, f1, 2, flow, 4), c10::Error);
}

#ifdef L2M_PARITY_ON_CUDA
// The CUDA kernel (whole-pixel window, channels-last rows) against the
// grid_sample formulation on the CPU, with warp targets partly outside the
// support image (zero padding) and a NaN; channel counts on and off the
// coalesced kernel's 16-byte path (and RoMa's 512 and 1024, 2 and 4 vectors
// a lane); fp16 inputs reported and bounded by their rounding.
TEST(LocalCorrelationCuda, MatchesGridSampleIncludingBorders) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (int64_t channels : {16, 36, 512, 1024}) {
    const torch::Tensor f0 = torch::randn({2, channels, 12, 20}, cuda);
    const torch::Tensor f1 = torch::randn({2, channels, 12, 20}, cuda);
    torch::Tensor flow = torch::rand({2, 2, 12, 20}, cuda) * 2.4 - 1.2;
    flow[1][0][3][4] = std::numeric_limits<float>::quiet_NaN();
    for (int radius : {1, 3, 7}) {
      const torch::Tensor ref =
          LocalCorrelation(f0.cpu(), f1.cpu(), radius, flow.cpu());
      const torch::Tensor valid = ref.isfinite();
      const torch::Tensor got = LocalCorrelation(f0, f1, radius, flow);
      ASSERT_EQ(got.sizes(), ref.sizes());
      const double err =
          (got.cpu() - ref).abs().masked_select(valid).max().item<double>();
      const torch::Tensor got16 = LocalCorrelation(
          f0.to(torch::kHalf), f1.to(torch::kHalf), radius, flow);
      const double err16 = (got16.cpu().to(torch::kFloat) - ref)
                               .abs()
                               .masked_select(valid)
                               .max()
                               .item<double>();
      std::printf(
          "[local corr C=%lld r=%d] kernel vs grid_sample max|err| fp32 %.3e, "
          "fp16 %.3e (max |ref| %.2f)\n",
          static_cast<long long>(channels),
          radius,
          err,
          err16,
          ref.abs().masked_select(valid).max().item<double>());
      EXPECT_LT(err, 1e-4);
      EXPECT_LT(err16, 2e-2);
    }
  }
}

#ifdef L2M_HAVE_CUDA_KERNELS
// The tensor-core route of the local correlation (8×8 query tiles, one GEMM
// over the union of their windows) on a smooth warp (zoom, rotation, shift,
// sub-pixel noise) torn at a few pixels (tiles that must take the per-query
// route), with a NaN and a target far outside, partial tiles at the borders
// and a rolled support batch. Both routes against the grid_sample
// formulation on the CPU over the same fp16/bf16-rounded inputs: the
// products are exact in fp32 on either route, so each output is off by its
// rounding to fp16/bf16 (half an ulp, 2^-11 / 2^-8 relative) plus fp32
// summation noise (1e-4 absolute for outputs of order 1).
TEST(LocalCorrelationCuda, TensorRouteMatchesGridSampleOnSmoothWarps) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  // Larger than 8 passes of 128 pixels (the most a tile takes on the tensor
  // cores), so a torn tile's union exceeds them at every radius.
  const int64_t B = 3, h = 40, w = 44;
  const torch::Tensor y = (torch::arange(h, cuda) * 2 + 1) / double(h) - 1;
  const torch::Tensor x = (torch::arange(w, cuda) * 2 + 1) / double(w) - 1;
  const auto grid = torch::meshgrid({y, x}, "ij");
  const double zoom = 1.0, angle = 0.15;
  torch::Tensor flow = torch::stack(
      {zoom * (std::cos(angle) * grid[1] - std::sin(angle) * grid[0]) + 0.1,
       zoom * (std::sin(angle) * grid[1] + std::cos(angle) * grid[0]) - 0.05});
  flow = flow.unsqueeze(0).repeat({B, 1, 1, 1}) +
         0.01 * torch::randn({B, 2, h, w}, cuda);
  // Tears: targets thrown to the opposite corner, one NaN, one far outside.
  flow[0][0][1][1] = 0.95, flow[0][1][1][1] = 0.95;
  flow[1][0][38][42] = -0.95, flow[1][1][38][42] = -0.95;
  flow[2][1][17][9] = std::numeric_limits<float>::quiet_NaN();
  flow[2][0][5][25] = 1e7;
  const torch::Tensor coords = flow.permute({0, 2, 3, 1}).contiguous();
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const double rounding =
        dtype == torch::kHalf ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    for (int64_t channels : {256, 512}) {
      const torch::Tensor f0 = torch::randn({B, channels, h, w}, cuda)
                                   .to(dtype)
                                   .contiguous(at::MemoryFormat::ChannelsLast);
      const torch::Tensor f1 = torch::randn({B, channels, h, w}, cuda)
                                   .to(dtype)
                                   .contiguous(at::MemoryFormat::ChannelsLast);
      for (int radius : {2, 3, 7}) {
        for (int64_t offset : {0, 1}) {
          const torch::Tensor ref = LocalCorrelation(f0.cpu().to(torch::kFloat),
                                                     f1.cpu().to(torch::kFloat),
                                                     radius,
                                                     flow.cpu(),
                                                     offset);
          const torch::Tensor valid = ref.isfinite();
          torch::Tensor routes;
          const torch::Tensor tiles = internal::LocalCorrelationKernel(
              f0,
              f1,
              coords,
              radius,
              offset,
              internal::LocalCorrelationRoute::kAuto,
              &routes);
          const torch::Tensor per_query = internal::LocalCorrelationKernel(
              f0,
              f1,
              coords,
              radius,
              offset,
              internal::LocalCorrelationRoute::kPerQuery);
          ASSERT_EQ(tiles.sizes(), ref.sizes());
          const torch::Tensor bound = rounding * ref.abs() + 1e-4;
          double worst[2] = {0, 0};  // err / bound, tile and per-query route
          int i = 0;
          for (const torch::Tensor& got : {tiles, per_query}) {
            const torch::Tensor err = (got.cpu().to(torch::kFloat) - ref).abs();
            worst[i++] =
                (err / bound).masked_select(valid).max().item<double>();
          }
          const auto r = routes.cpu();
          std::printf(
              "[local corr tiles %s C=%lld r=%d offset %lld] err/bound tile "
              "route %.3f, per-query %.3f; tiles %d tensor, %d per query\n",
              dtype == torch::kHalf ? "fp16" : "bf16",
              static_cast<long long>(channels),
              radius,
              static_cast<long long>(offset),
              worst[0],
              worst[1],
              r[0].item<int>(),
              r[1].item<int>());
          EXPECT_LE(worst[0], 1.0);
          EXPECT_LE(worst[1], 1.0);
          // Both routes ran: the torn tiles per query, the others on the
          // tensor cores.
          EXPECT_EQ(r[1].item<int>(), 2);
          EXPECT_GT(r[0].item<int>(), B * 5 * 6 - 10);
        }
      }
    }
  }
}

// The conv epilogue kernels (VGG, the projections and the refiners on CUDA)
// against relu(x + bias), in float32 exactly and in fp16 to one rounding,
// and against x + bias bit for bit.
TEST(BiasReluCuda, MatchesReluOfSum) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto dtype : {torch::kFloat, torch::kHalf}) {
    torch::Tensor x = torch::randn({2, 24, 7, 5}, cuda)
                          .to(dtype)
                          .contiguous(at::MemoryFormat::ChannelsLast);
    const torch::Tensor bias = torch::randn({24}, cuda);
    const torch::Tensor ref =
        torch::relu(x.to(torch::kFloat) + bias.view({1, -1, 1, 1}));
    ASSERT_TRUE(internal::BiasReluInplaceSupported(x));
    internal::BiasReluInplace(x, bias);
    const double err = (x.to(torch::kFloat) - ref).abs().max().item<double>();
    EXPECT_LE(err, dtype == torch::kFloat ? 0.0 : 4e-3) << dtype;
  }
  // The bias alone, as LibTorch adds a conv's bias: bit-equal, with the
  // bias in float32 or (as autocast casts it) in x's dtype.
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const torch::Tensor x = torch::randn({2, 24, 7, 5}, cuda)
                                .to(dtype)
                                .contiguous(at::MemoryFormat::ChannelsLast);
    for (const auto bias_dtype : {torch::kFloat, dtype}) {
      const torch::Tensor bias = torch::randn({24}, cuda).to(bias_dtype);
      torch::Tensor got = x.clone();
      internal::BiasAddInplace(got, bias);
      const torch::Tensor ref =
          bias_dtype == dtype
              ? x + bias.view({1, -1, 1, 1})
              : (x.to(torch::kFloat) + bias.view({1, -1, 1, 1})).to(dtype);
      EXPECT_TRUE(torch::equal(got, ref)) << dtype << " bias " << bias_dtype;
    }
  }
  // Rows that do not fill 16-byte vectors are refused, not miscomputed.
  torch::Tensor odd = torch::randn({1, 3, 4, 4}, cuda)
                          .contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_FALSE(internal::BiasReluInplaceSupported(odd));
  EXPECT_THROW(internal::BiasReluInplace(odd, torch::zeros({3}, cuda)),
               c10::Error);
}

// VGG's first conv kernel against the steps autocast takes: x and the
// weights rounded to the dtype, the conv summed in float64 here, rounded,
// + bias, ReLU, rounded. Only the summation (fp32 on the tensor cores)
// differs, so an output may be one rounding off. NCHW and channels-last images,
// partial tiles, both widths; unsupported inputs are refused.
TEST(InputConvCuda, MatchesRoundedConvBiasRelu) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const double ulp =
        dtype == torch::kHalf ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
    for (const int64_t C : {32, 64}) {
      for (const bool channels_last : {false, true}) {
        torch::Tensor x = torch::randn({2, 3, 13, 37}, cuda) * 2.0;
        if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
        const torch::Tensor w = torch::randn({C, 3, 3, 3}, cuda) * 0.3;
        const torch::Tensor b = torch::randn({C}, cuda) * 0.1;
        ASSERT_TRUE(internal::InputConvBiasReluSupported(x, w, dtype));
        const torch::Tensor got = internal::InputConvBiasRelu(x, w, b, dtype);
        ASSERT_EQ(got.scalar_type(), dtype);
        EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
        const torch::Tensor conv = torch::conv2d(x.to(dtype).to(torch::kDouble),
                                                 w.to(dtype).to(torch::kDouble),
                                                 {},
                                                 1,
                                                 1)
                                       .to(dtype)
                                       .to(torch::kFloat);
        const torch::Tensor ref = torch::relu(conv + b.view({1, -1, 1, 1}))
                                      .to(dtype)
                                      .to(torch::kFloat);
        // A flipped rounding of the conv (one ulp of it) may carry through
        // the bias and be rounded once more (one ulp of the result).
        const torch::Tensor err = (got.to(torch::kFloat) - ref).abs();
        const torch::Tensor bound = (conv.abs() + ref.abs()) * ulp + 1e-6;
        EXPECT_TRUE((err <= bound).all().item<bool>())
            << dtype << " C=" << C << " channels_last=" << channels_last
            << " max err " << err.max().item<double>();
        // Most outputs are bit-equal; a summation-order rounding flip is rare.
        EXPECT_GE((err == 0).to(torch::kFloat).mean().item<double>(), 0.99);
      }
    }
  }
  const torch::Tensor w = torch::zeros({64, 3, 3, 3}, cuda);
  EXPECT_FALSE(internal::InputConvBiasReluSupported(
      torch::zeros({1, 4, 8, 8}, cuda), w, torch::kHalf));
  EXPECT_FALSE(internal::InputConvBiasReluSupported(
      torch::zeros({1, 3, 8, 8}, cuda), w, torch::kFloat));
  EXPECT_THROW(internal::InputConvBiasRelu(torch::zeros({1, 3, 8, 8}, cuda),
                                           torch::zeros({48, 3, 3, 3}, cuda),
                                           torch::zeros({48}, cuda),
                                           torch::kHalf),
               c10::Error);
}

// VGG's pool kernel against max_pool2d: odd sizes (floor), a NaN (which
// propagates), fp16 and bf16 bit for bit (a max rounds nothing).
TEST(MaxPool2x2Cuda, MatchesMaxPool2d) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    torch::Tensor x = torch::randn({2, 24, 9, 13}, cuda).to(dtype);
    x[1][5][2][3] = std::numeric_limits<float>::quiet_NaN();
    x = x.contiguous(at::MemoryFormat::ChannelsLast);
    ASSERT_TRUE(internal::MaxPool2x2Supported(x));
    const torch::Tensor got = internal::MaxPool2x2(x);
    const torch::Tensor ref = torch::max_pool2d(x.to(torch::kFloat), 2, 2);
    ASSERT_EQ(got.sizes(), ref.sizes());
    EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::isnan(got[1][5][1][1]).item<bool>());
    EXPECT_TRUE(torch::equal(torch::nan_to_num(got.to(torch::kFloat), 0.0),
                             torch::nan_to_num(ref, 0.0)))
        << dtype;
  }
  EXPECT_FALSE(internal::MaxPool2x2Supported(
      torch::zeros({1, 12, 4, 4}, cuda.dtype(torch::kHalf))
          .contiguous(at::MemoryFormat::ChannelsLast)));
  EXPECT_FALSE(internal::MaxPool2x2Supported(
      torch::zeros({1, 16, 4, 4}, cuda.dtype(torch::kHalf))));  // NCHW
}

// The wide blocks' depthwise kernel against float64 on the CPU: a partial
// last 64-channel chunk (200), partial tiles, fp16 and bf16. Its only
// rounding is the output's to the storage dtype.
TEST(DepthwiseBiasReluCuda, MatchesDepthwiseRelu) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const double u =
        dtype == torch::kHalf ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    for (int64_t P : {24, 200, 576}) {
      const torch::Tensor x = torch::randn({2, 13, 21, P}, cuda).to(dtype);
      const torch::Tensor dw = torch::randn({P, 1, 5, 5}, cuda) * 0.2;
      const torch::Tensor dw_b = torch::randn({P}, cuda) * 0.1;
      ASSERT_TRUE(internal::DepthwiseBiasReluSupported(P, 5, dtype));
      torch::Tensor y = torch::empty_like(x);
      internal::DepthwiseBiasRelu(
          x, dw.view({P, 25}).t().contiguous(), dw_b, y);
      const torch::Tensor xd = x.cpu().to(torch::kDouble).permute({0, 3, 1, 2});
      const torch::Tensor ref = torch::relu(
          torch::conv2d(xd, dw.cpu().to(f64), dw_b.cpu().to(f64), 1, 2, 1, P));
      const torch::Tensor sum_abs = torch::conv2d(xd.abs(),
                                                  dw.cpu().to(f64).abs(),
                                                  dw_b.cpu().to(f64).abs(),
                                                  1,
                                                  2,
                                                  1,
                                                  P);
      const torch::Tensor bound = u * ref.abs() + 1e-6 * sum_abs + 1e-7;
      const torch::Tensor err =
          (y.cpu().to(torch::kDouble).permute({0, 3, 1, 2}) - ref).abs();
      std::printf("[depthwise %s P=%lld] max|err| %.3e, max err/bound %.3f\n",
                  dtype == torch::kHalf ? "fp16" : "bf16",
                  static_cast<long long>(P),
                  err.max().item<double>(),
                  (err / bound).max().item<double>());
      EXPECT_TRUE((err <= bound).all().item<bool>()) << dtype << " P=" << P;
    }
  }
  EXPECT_FALSE(internal::DepthwiseBiasReluSupported(12, 5, torch::kHalf));
  EXPECT_FALSE(internal::DepthwiseBiasReluSupported(24, 5, torch::kFloat));
}

// The float32 out_conv from fp16/bf16 activations against float64: the
// widening is exact, so only fp32 accumulation error is left.
// got (B, O, H, W) float32 against out_conv(x) = x (B, H, W, P) · wᵀ + b in
// float64, within float32 summation: 1e-6 · |x|·|w| + 1e-6.
void ExpectOutConvWithinFloat32(const torch::Tensor& got,
                                const torch::Tensor& x,
                                const torch::Tensor& w,
                                const torch::Tensor& b,
                                const std::string& what) {
  const torch::Tensor xd = x.cpu().to(torch::kDouble);
  const torch::Tensor wd = w.cpu().to(torch::kDouble);
  const torch::Tensor ref =
      (torch::matmul(xd, wd.t()) + b.cpu().to(torch::kDouble))
          .permute({0, 3, 1, 2});
  const torch::Tensor bound =
      1e-6 * torch::matmul(xd.abs(), wd.abs().t()).permute({0, 3, 1, 2}) + 1e-6;
  ASSERT_EQ(got.sizes(), ref.sizes());
  const torch::Tensor err = (got.cpu().to(torch::kDouble) - ref).abs();
  EXPECT_TRUE((err <= bound).all().item<bool>())
      << what << " max err " << err.max().item<double>();
}

TEST(RefinerOutConvCuda, MatchesFloat64) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    for (int64_t P : {24, 144, 1144}) {
      const torch::Tensor x = torch::randn({2, 5, 7, P}, cuda).to(dtype);
      const torch::Tensor w = torch::randn({3, P}, cuda);
      const torch::Tensor b = torch::randn({3}, cuda);
      const torch::Tensor got = internal::RefinerOutConv(x, w, b);
      ASSERT_NO_FATAL_FAILURE(ExpectOutConvWithinFloat32(
          got, x, w, b, c10::toString(dtype) + (" P=" + std::to_string(P))));
    }
  }
}

// The refiner's in-place grid_sample against LibTorch's grid_sample on the
// same device and dtype: warp targets partly outside the support (zero
// padding), other channels of the buffer untouched. Same formulas, so at
// most one rounding apart.
TEST(GridSampleIntoCuda, MatchesGridSample) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  namespace F = torch::nn::functional;
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto& [C, offset] :
       {std::pair<int64_t, int64_t>{16, 8}, {8, 24}}) {
    for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
      const double u =
          dtype == torch::kHalf ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
      const torch::Tensor y = torch::randn({2, C, 9, 14}, cuda)
                                  .to(dtype)
                                  .contiguous(at::MemoryFormat::ChannelsLast);
      const torch::Tensor grid =
          (torch::rand({2, 6, 11, 2}, cuda) * 2.4 - 1.2).to(dtype);
      ASSERT_TRUE(internal::GridSampleIntoSupported(y, dtype));
      torch::Tensor dest = torch::full({2, 6, 11, 40}, 7.0, cuda.dtype(dtype));
      internal::GridSampleInto(y, grid, dest, offset);
      const torch::Tensor ref = F::grid_sample(y,
                                               grid,
                                               F::GridSampleFuncOptions()
                                                   .mode(torch::kBilinear)
                                                   .padding_mode(torch::kZeros)
                                                   .align_corners(false))
                                    .permute({0, 2, 3, 1})
                                    .to(torch::kFloat);
      const torch::Tensor got = dest.narrow(3, offset, C).to(torch::kFloat);
      const double err = (got - ref).abs().max().item<double>();
      std::printf("[grid sample into %s, %ld channels] max|err| %.3e\n",
                  dtype == torch::kHalf ? "fp16" : "bf16",
                  static_cast<long>(C),
                  err);
      EXPECT_LE(err, u * ref.abs().max().item<double>()) << dtype;
      EXPECT_TRUE(torch::all(dest.narrow(3, 0, offset) == 7).item<bool>());
      EXPECT_TRUE(torch::all(dest.narrow(3, offset + C, 40 - offset - C) == 7)
                      .item<bool>());
    }
  }
  EXPECT_FALSE(internal::GridSampleIntoSupported(
      torch::zeros({1, 9, 4, 4}, cuda.dtype(torch::kHalf))
          .contiguous(at::MemoryFormat::ChannelsLast),
      torch::kHalf));
  EXPECT_FALSE(internal::GridSampleIntoSupported(
      torch::zeros({1, 16, 4, 4}, cuda.dtype(torch::kHalf)), torch::kHalf));
}

// The refiner's input assembled in one kernel against LibTorch's ops under
// autocast (grid_sample on the rounded grid, the disp_emb conv with its bias
// added to the rounded result, cat, channels-last): x and corr copied
// exactly, x_hat and emb within one rounding, the padding zero. Parts in
// both layouts, channel counts that straddle the 16-byte vectors (9 + 9 +
// 6 + 25), and the coarse pass's expanded identity flow.
TEST(RefinerInputCuda, MatchesLibTorchParts) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  namespace F = torch::nn::functional;
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t B = 2, h = 6, w = 11, E = 6;
  const torch::Tensor emb_w = torch::randn({E, 2, 1, 1}, cuda);
  const torch::Tensor emb_b = torch::randn({E}, cuda);
  const double scale = 40.0 / 32.0 * 3.0;
  // 9 channels: every vector mixes parts; 16: x and x_hat load whole
  // vectors where channels-last; 9 without a correlation (K = 0): scale
  // 1's 24 channels, all generic, a thread a pixel.
  for (const auto& [C, K] : {std::pair<int64_t, int64_t>{9, 25},
                             std::pair<int64_t, int64_t>{16, 25},
                             std::pair<int64_t, int64_t>{9, 0}}) {
    const int64_t used = 2 * C + E + K, P = (used + 7) / 8 * 8 + 8;
    for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
      const double u =
          dtype == torch::kHalf ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
      for (const bool channels_last : {false, true}) {
        for (const bool identity_flow : {false, true}) {
          // The symmetric batch's support at an offset (only with the
          // random flow, to keep the loop short).
          const int64_t offset = identity_flow ? 0 : 1;
          const auto layout = channels_last ? at::MemoryFormat::ChannelsLast
                                            : at::MemoryFormat::Contiguous;
          const torch::Tensor x =
              torch::randn({B, C, h, w}, cuda).to(dtype).contiguous(layout);
          const torch::Tensor y =
              torch::randn({B, C, 9, 14}, cuda).to(dtype).contiguous(layout);
          const torch::Tensor corr = K == 0 ? torch::Tensor()
                                            : torch::randn({B, K, h, w}, cuda)
                                                  .to(dtype)
                                                  .contiguous(layout);
          const torch::Tensor identity = IdentityGrid(h, w, cuda);
          const torch::Tensor flow =
              identity_flow ? identity.expand({B, 2, h, w})
                            : torch::rand({B, 2, h, w}, cuda) * 2.4 - 1.2;
          internal::RefinerInputParts parts;
          parts.x = x;
          parts.y = y;
          parts.flow = flow;
          parts.identity = identity.contiguous();
          parts.emb_weight = emb_w;
          parts.emb_bias = emb_b;
          parts.emb_scale = scale;
          parts.corr = corr;
          parts.support_offset = offset;
          ASSERT_TRUE(internal::AssembleRefinerInputSupported(x, y, dtype));
          torch::Tensor d = torch::full({B, h, w, P}, 7.0, cuda.dtype(dtype));
          internal::AssembleRefinerInput(parts, d);

          torch::Tensor x_hat, emb;
          {
            CudaAutocast autocast(dtype);
            x_hat = F::grid_sample(torch::roll(y, {-offset}, {0}),
                                   flow.permute({0, 2, 3, 1}).to(dtype),
                                   F::GridSampleFuncOptions()
                                       .mode(torch::kBilinear)
                                       .padding_mode(torch::kZeros)
                                       .align_corners(false));
            emb = F::conv2d(scale * (flow - identity.expand({B, 2, h, w})),
                            emb_w,
                            F::Conv2dFuncOptions().bias(emb_b));
          }
          ASSERT_EQ(emb.scalar_type(), dtype);
          auto part = [&](int64_t first, int64_t c) {
            return d.narrow(3, first, c)
                .permute({0, 3, 1, 2})
                .to(torch::kFloat);
          };
          auto max_err = [](const torch::Tensor& a, const torch::Tensor& b) {
            return (a - b.to(torch::kFloat)).abs().max().item<double>();
          };
          const double x_hat_err = max_err(part(C, C), x_hat);
          const double emb_err = max_err(part(2 * C, E), emb);
          std::printf(
              "[refiner input %s, %ld + %ld channels, %s, %s flow] x_hat "
              "%.3e, emb %.3e max|err|\n",
              dtype == torch::kHalf ? "fp16" : "bf16",
              static_cast<long>(C),
              static_cast<long>(K),
              channels_last ? "channels-last" : "NCHW",
              identity_flow ? "identity" : "random",
              x_hat_err,
              emb_err);
          EXPECT_EQ(max_err(part(0, C), x), 0.0);
          if (K > 0) EXPECT_EQ(max_err(part(2 * C + E, K), corr), 0.0);
          EXPECT_LE(x_hat_err, u * x_hat.abs().max().item<double>());
          EXPECT_LE(emb_err, 2 * u * emb.abs().max().item<double>());
          EXPECT_TRUE(
              torch::all(d.narrow(3, used, P - used) == 0).item<bool>());
        }
      }
    }
  }
  // A wrong part is named; an offset outside the batch is refused.
  internal::RefinerInputParts bad;
  bad.x = torch::zeros({1, 8, 4, 4}, cuda.dtype(torch::kHalf));
  bad.y = bad.x;
  bad.flow = torch::zeros({1, 2, 4, 5}, cuda);
  bad.identity = torch::zeros({1, 2, 4, 4}, cuda);
  bad.emb_weight = torch::zeros({2, 2, 1, 1}, cuda);
  bad.emb_bias = torch::zeros({2}, cuda);
  torch::Tensor d = torch::empty({1, 4, 4, 24}, cuda.dtype(torch::kHalf));
  try {
    internal::AssembleRefinerInput(bad, d);
    ADD_FAILURE() << "a flow of the wrong width was taken";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("flow"), std::string::npos)
        << e.what();
  }
  bad.flow = torch::zeros({1, 2, 4, 4}, cuda);
  bad.support_offset = 1;
  try {
    internal::AssembleRefinerInput(bad, d);
    ADD_FAILURE() << "a support offset outside the batch was taken";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("support_offset"), std::string::npos)
        << e.what();
  }
}

// The ViT's residual step + LayerNorm in one pass: x_out exactly as
// torch::addcmul, h within its own rounding of the exact LayerNorm of x_out
// (float64), with and without LayerScale, at DINOv2-L's width and at 40.
TEST(AddScaledLayerNormCuda, MatchesAddcmulLayerNorm) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const double u =
        dtype == torch::kHalf ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    for (const int64_t C : {1024, 40}) {
      for (const bool scaled : {true, false}) {
        const torch::Tensor x = (torch::randn({2, 37, C}, cuda) * 3).to(dtype);
        const torch::Tensor a = torch::randn({2, 37, C}, cuda).to(dtype);
        const torch::Tensor g =
            scaled ? (torch::rand({C}, cuda) * 0.2).to(dtype) : torch::Tensor();
        const torch::Tensor w = (torch::rand({C}, cuda) + 0.5).to(dtype);
        const torch::Tensor b = (torch::randn({C}, cuda) * 0.1).to(dtype);
        const auto [x_out, h] =
            internal::AddScaledLayerNorm(x, a, g, w, b, 1e-6);
        const torch::Tensor expected_x =
            scaled ? torch::addcmul(x, a, g) : x + a;
        EXPECT_TRUE(torch::equal(x_out, expected_x)) << dtype << " C=" << C;
        const torch::Tensor xd = x_out.cpu().to(torch::kDouble);
        const torch::Tensor mean = xd.mean(-1, true);
        const torch::Tensor var = (xd - mean).pow(2).mean(-1, true);
        const torch::Tensor exact =
            (xd - mean) / (var + 1e-6).sqrt() * w.cpu().to(torch::kDouble) +
            b.cpu().to(torch::kDouble);
        const torch::Tensor err = (h.cpu().to(torch::kDouble) - exact).abs();
        EXPECT_TRUE((err <= u * exact.abs() + 1e-4).all().item<bool>())
            << dtype << " C=" << C << " max err " << err.max().item<double>();
      }
    }
  }
  EXPECT_FALSE(internal::AddScaledLayerNormSupported(
      torch::zeros({2, 12}, cuda.dtype(torch::kHalf))));
}

// The GP's kernel matrix in one pass is bit-equal to CosKernel (+ sigma I).
TEST(GpCuda, KernelMatrixFromDotsEqualsCosKernel) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const torch::Tensor x = torch::randn({2, 300, 64}, cuda);
  const torch::Tensor y = torch::randn({2, 200, 64}, cuda);
  const torch::Tensor z = torch::randn({2, 201, 64}, cuda);  // not 4 · k
  for (const auto& [a, b, sigma] :
       {std::tuple<torch::Tensor, torch::Tensor, double>{x, y, 0.0},
        {y, y, 0.1},
        {x, z, 0.0},
        {z, z, 0.1}}) {
    torch::Tensor dots = torch::bmm(a, b.transpose(1, 2));
    internal::CosKernelFromDotsCuda(dots,
                                    a.norm(2, -1).contiguous(),
                                    b.norm(2, -1).contiguous(),
                                    0.2,
                                    sigma);
    torch::Tensor expected = CosKernel(a, b, 0.2);
    if (sigma != 0) {
      expected = expected + sigma * torch::eye(a.size(1), cuda).unsqueeze(0);
    }
    EXPECT_TRUE(torch::equal(dots, expected)) << "sigma " << sigma;
  }
}

// fp16/bf16 features into the GP: the kernel matrices' GEMMs take them as
// they are (float32 output) instead of widened copies. Both routes compute
// the same exact products and differ only in float32 summation order, so
// their outputs are as far apart as the float route on the GPU is from the
// same on the CPU (another order again), within a factor of 4. Three
// images: the batched block factorisation.
TEST(GpCuda, LowPrecisionInputsMatchFloatRoute) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(5);
  GpConfig config;
  config.gp_dim = 32;
  config.use_cholesky = true;
  Gp gp(config);
  gp->eval();
  Gp gp_cpu(config);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : gp_cpu->named_parameters()) {
      p.value().copy_(gp->named_parameters()[p.key()]);
    }
  }
  gp->to(Device());
  torch::NoGradGuard no_grad;
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const torch::Tensor q = torch::randn({3, 64, 16, 16}, Device()).to(dtype);
    const torch::Tensor s = torch::randn({3, 64, 16, 16}, Device()).to(dtype);
    const torch::Tensor low = gp(q, s);
    const torch::Tensor wide = gp(q.to(torch::kFloat), s.to(torch::kFloat));
    const torch::Tensor cpu =
        gp_cpu(q.to(torch::kFloat).cpu(), s.to(torch::kFloat).cpu());
    ASSERT_EQ(low.scalar_type(), torch::kFloat);
    const double route = (low - wide).abs().max().item<double>();
    const double order = (cpu - wide.cpu()).abs().max().item<double>();
    const double scale = wide.abs().max().item<double>();
    std::printf(
        "[gp %s inputs] max|low - float route| %.3e, max|cpu - gpu| "
        "%.3e (max|mu| %.3e)\n",
        dtype == torch::kHalf ? "fp16" : "bf16",
        route,
        order,
        scale);
    EXPECT_LE(route, 4 * order + 1e-6 * scale) << dtype;
  }
}

// One diagonal step: the factor and its inverse of blocks of every size up
// to the limit, read from strided views (only the lower triangle), against
// float64 LibTorch; sizes it does not take are refused.
TEST(GpCuda, CholeskyInverseBlockMatchesFloat64) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(3);
  const auto cuda = torch::dtype(torch::kFloat).device(torch::kCUDA);
  for (const int64_t n : {int64_t{1},
                          int64_t{33},
                          int64_t{100},
                          internal::kCholeskyInverseMaxBlock}) {
    const torch::Tensor A = SpdKernelMatrix(3, n, 16, cuda);
    // A view with a row stride of 2n, garbage above the diagonal.
    torch::Tensor wide = torch::full({3, n, 2 * n}, 1e4, cuda);
    wide.slice(2, 0, n).copy_(A.tril());
    const torch::Tensor c = wide.slice(2, 0, n);
    torch::Tensor l = torch::full({3, n, n}, -1.0, cuda);
    torch::Tensor inv = torch::full({3, 2 * n, n}, -1.0, cuda).slice(1, 0, n);
    internal::CholeskyInverseBlockCuda(c, l, inv);
    const torch::Tensor ref = torch::linalg_cholesky(A.to(torch::kDouble));
    const torch::Tensor ref_inv = torch::linalg_inv(ref);
    auto errors = [&](const torch::Tensor& factor, const torch::Tensor& f_inv) {
      return std::pair<double, double>{
          (factor.to(torch::kDouble) - ref).abs().max().item<double>(),
          ((f_inv.to(torch::kDouble) - ref_inv).abs().max() /
           ref_inv.abs().max())
              .item<double>()};
    };
    // LibTorch's fp32 route (cuSOLVER, cuBLAS) sets the scale of the error.
    const torch::Tensor lib = torch::linalg_cholesky(A);
    const auto [lib_l, lib_inv] = errors(
        lib,
        torch::linalg_solve_triangular(
            lib, torch::eye(n, cuda).expand({3, n, n}), /*upper=*/false));
    const auto [l_err, inv_err] = errors(l, inv);
    std::printf(
        "[gp] diagonal step n %ld: factor err %.2e (LibTorch %.2e), "
        "inverse rel err %.2e (LibTorch %.2e)\n",
        static_cast<long>(n),
        l_err,
        lib_l,
        inv_err,
        lib_inv);
    EXPECT_LE(l_err, 10 * lib_l + 1e-6) << "n " << n;
    EXPECT_LE(inv_err, 10 * lib_inv + 1e-6) << "n " << n;
    EXPECT_EQ(torch::triu(l, 1).abs().max().item<float>(), 0.f);
    EXPECT_EQ(torch::triu(inv, 1).abs().max().item<float>(), 0.f);
  }
  const int64_t too_big = internal::kCholeskyInverseMaxBlock + 1;
  torch::Tensor big = torch::eye(too_big, cuda).expand({2, too_big, too_big});
  torch::Tensor l = torch::empty_like(big), inv = torch::empty_like(big);
  EXPECT_THROW(internal::CholeskyInverseBlockCuda(big, l, inv), c10::Error);
  torch::Tensor half = torch::eye(8, cuda.dtype(torch::kHalf)).unsqueeze(0);
  torch::Tensor l8 = torch::empty_like(half), inv8 = torch::empty_like(half);
  EXPECT_THROW(internal::CholeskyInverseBlockCuda(half, l8, inv8), c10::Error);
}

TEST(RefinerBlockFusedCuda, MatchesDepthwiseReluPointwise) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const double u =
        dtype == torch::kHalf ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    for (int64_t P : {24, 40, 144}) {
      const int64_t B = 2, H = 13, W = 21;
      ASSERT_TRUE(internal::RefinerBlockFusedSupported(P, 5, dtype));
      const torch::Tensor x = torch::randn({B, H, W, P}, cuda).to(dtype);
      const torch::Tensor dw = torch::randn({P, 1, 5, 5}, cuda) * 0.2;
      const torch::Tensor dw_b = torch::randn({P}, cuda) * 0.1;
      const torch::Tensor pw =
          (torch::randn({P, P}, cuda) / std::sqrt(static_cast<double>(P)))
              .to(dtype);
      const torch::Tensor pw_b = torch::randn({P}, cuda) * 0.1;
      torch::Tensor y = torch::empty_like(x);
      internal::RefinerBlockFused(
          x, dw.view({P, 25}).t().contiguous(), dw_b, pw, pw_b, y);

      const torch::Tensor xd = x.cpu().to(torch::kDouble).permute({0, 3, 1, 2});
      const torch::Tensor wd = pw.cpu().to(torch::kDouble);
      const torch::Tensor a = torch::relu(
          torch::conv2d(xd, dw.cpu().to(f64), dw_b.cpu().to(f64), 1, 2, 1, P));
      const torch::Tensor wa =
          torch::conv2d(a.abs(), wd.abs().view({P, P, 1, 1}));
      const torch::Tensor ref =
          torch::conv2d(a, wd.view({P, P, 1, 1}), pw_b.cpu().to(f64));
      const torch::Tensor bound = u * (wa + ref.abs()) + 1e-5 * (1 + wa);
      const torch::Tensor err =
          (y.cpu().to(torch::kDouble).permute({0, 3, 1, 2}) - ref).abs();
      std::printf(
          "[refiner block %s P=%lld] max|err| %.3e, max err/bound %.3f, "
          "max|ref| %.2f\n",
          dtype == torch::kHalf ? "fp16" : "bf16",
          static_cast<long long>(P),
          err.max().item<double>(),
          (err / bound).max().item<double>(),
          ref.abs().max().item<double>());
      EXPECT_TRUE((err <= bound).all().item<bool>()) << dtype << " P=" << P;
    }
  }
  // What the kernel does not take is refused with the reason.
  const torch::Tensor x12 =
      torch::zeros({1, 4, 4, 12}, cuda.dtype(torch::kHalf));
  EXPECT_FALSE(internal::RefinerBlockFusedSupported(12, 5, torch::kHalf));
  EXPECT_FALSE(internal::RefinerBlockFusedSupported(24, 3, torch::kHalf));
  EXPECT_FALSE(internal::RefinerBlockFusedSupported(24, 5, torch::kFloat));
  EXPECT_FALSE(internal::RefinerBlockFusedSupported(168, 5, torch::kHalf));
  torch::Tensor y12 = torch::empty_like(x12);
  EXPECT_THROW(internal::RefinerBlockFused(x12,
                                           torch::zeros({25, 12}, cuda),
                                           torch::zeros({12}, cuda),
                                           torch::zeros({12, 12}, cuda),
                                           torch::zeros({12}, cuda),
                                           y12),
               c10::Error);
  const torch::Tensor x24 =
      torch::zeros({1, 4, 4, 24}, cuda.dtype(torch::kHalf));
  torch::Tensor alias = x24;
  EXPECT_THROW(internal::RefinerBlockFused(
                   x24,
                   torch::zeros({25, 24}, cuda),
                   torch::zeros({24}, cuda),
                   torch::zeros({24, 24}, cuda.dtype(torch::kHalf)),
                   torch::zeros({24}, cuda),
                   alias),
               c10::Error);
}

// A refiner's last block with its out_conv in the epilogue against the
// block's stored output dotted in float64: the same rounded activations, so
// within float32 summation of them (RefinerOutConvCuda's bound). Images of
// more tiles than the grid has pipelines, so that each pipeline reuses its
// buffers (the partial sums must not disturb A's zero K padding at 24 and
// 40 channels), and edges that cut tiles.
TEST(RefinerBlockFusedCuda, OutConvEpilogueMatchesBlockThenOutConv) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    for (int64_t P : {24, 40, 104, 144}) {
      const int64_t B = 4, H = 150, W = 147, O = 3;
      const torch::Tensor x = torch::randn({B, H, W, P}, cuda).to(dtype);
      const torch::Tensor taps = torch::randn({25, P}, cuda) * 0.2;
      const torch::Tensor dw_b = torch::randn({P}, cuda) * 0.1;
      const torch::Tensor pw =
          (torch::randn({P, P}, cuda) / std::sqrt(static_cast<double>(P)))
              .to(dtype);
      const torch::Tensor pw_b = torch::randn({P}, cuda) * 0.1;
      const torch::Tensor w = torch::randn({O, P}, cuda);
      const torch::Tensor b = torch::randn({O}, cuda);
      torch::Tensor y = torch::empty_like(x);
      internal::RefinerBlockFused(x, taps, dw_b, pw, pw_b, y);
      const torch::Tensor got =
          internal::RefinerBlockFusedOutConv(x, taps, dw_b, pw, pw_b, w, b);
      ASSERT_NO_FATAL_FAILURE(ExpectOutConvWithinFloat32(
          got, y, w, b, c10::toString(dtype) + (" P=" + std::to_string(P))));
    }
  }
  const torch::Tensor x24 =
      torch::zeros({1, 4, 4, 24}, cuda.dtype(torch::kHalf));
  EXPECT_THROW(internal::RefinerBlockFusedOutConv(
                   x24,
                   torch::zeros({25, 24}, cuda),
                   torch::zeros({24}, cuda),
                   torch::zeros({24, 24}, cuda.dtype(torch::kHalf)),
                   torch::zeros({24}, cuda),
                   torch::zeros({5, 24}, cuda),  // more outputs than 4
                   torch::zeros({5}, cuda)),
               c10::Error);
}

// The matcher's last step in one kernel against the LibTorch ops
// RegressionMatcher runs elsewhere (attenuation, sigmoid, the out-of-range
// mask, clamp, the symmetric concatenation): bit for bit, with flow values
// past ±1, NaN and infinities, strided inputs, with and without `low`.
TEST(FinalizeSymmetricCuda, EqualsLibTorchOps) {
  L2M_REQUIRE_DEVICE();
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const int64_t B = 2, N = 2 * B, h = 7, w = 33;
  // Channels-last storage: the kernel reads any strides.
  torch::Tensor flow =
      (torch::rand({N, h, w, 2}, cuda) * 3 - 1.5).permute({0, 3, 1, 2});
  flow.index_put_({0, 0, 1, 2}, std::numeric_limits<float>::quiet_NaN());
  flow.index_put_({3, 1, 4, 5}, std::numeric_limits<float>::infinity());
  const torch::Tensor certainty = torch::randn({N, 1, h, w}, cuda) * 4;
  torch::Tensor low = torch::randn({N, 1, h, w}, cuda) * 3;
  low.index_put_({1, 0, 2, 3}, -std::numeric_limits<float>::infinity());
  const torch::Tensor xs = IdentityAxis(w, cuda), ys = IdentityAxis(h, cuda);
  for (const bool attenuate : {false, true}) {
    torch::Tensor warp = torch::empty({B, h, 2 * w, 4}, cuda);
    torch::Tensor cert = torch::empty({B, h, 2 * w}, cuda);
    internal::FinalizeSymmetric(
        flow, certainty, attenuate ? low : torch::Tensor(), xs, ys, warp, cert);

    torch::Tensor c = certainty;
    if (attenuate) c = certainty - 0.5 * low * (low < 0);
    torch::Tensor f = flow.permute({0, 2, 3, 1});
    const torch::Tensor coords =
        IdentityGrid(h, w, cuda).permute({0, 2, 3, 1}).expand({N, h, w, 2});
    c = c.sigmoid();
    const torch::Tensor wrong = (f.abs() > 1).sum(-1) > 0;
    c = c.masked_fill(wrong.unsqueeze(1), 0);
    f = f.clamp(-1, 1);
    const auto flows = f.chunk(2, 0);
    const auto grids = coords.chunk(2, 0);
    const torch::Tensor ref_warp =
        torch::cat({torch::cat({grids[0], flows[0]}, -1),
                    torch::cat({flows[1], grids[1]}, -1)},
                   2);
    const auto certs = c.chunk(2, 0);
    const torch::Tensor ref_cert =
        torch::cat({certs[0], certs[1]}, 3).select(1, 0);
    EXPECT_TRUE(torch::equal(warp.isnan(), ref_warp.isnan()));
    EXPECT_TRUE(torch::equal(warp.nan_to_num(0), ref_warp.nan_to_num(0)))
        << "attenuate " << attenuate;
    EXPECT_TRUE(torch::equal(cert, ref_cert)) << "attenuate " << attenuate;
  }
  torch::Tensor small = torch::empty({B, h, w, 4}, cuda);
  torch::Tensor cert = torch::empty({B, h, 2 * w}, cuda);
  EXPECT_THROW(
      internal::FinalizeSymmetric(flow, certainty, low, xs, ys, small, cert),
      c10::Error);
}
#endif  // L2M_HAVE_CUDA_KERNELS
#endif

}  // namespace
}  // namespace l2m
