// GetGtWarp / WarpKeypoints vs RoMa's get_gt_warp / warp_kpts on
// fixtures/roma_losses/gt_warp (MANIFEST.md §4-5, tolerances §8): warps atol
// 1e-9 (float64 port), validity exact, relative depth error rtol 1e-9 with
// the same inf/NaN positions.
//
// The dense calls start from RoMa's grid, a float32 torch.linspace, whose
// last-bit rounding differs between LibTorch versions and devices. The
// fixture was made with LibTorch 1.13 on CPU, where our grid (and all else)
// is bit-identical; elsewhere a cell centre can move by a float32 ulp, so the
// dense calls get MANIFEST §8's float32 tolerance (1e-6) on valid cells and a
// looser bound on invalid ones, which can lie far outside and amplify it.
// Keypoints are float64 inputs: strict everywhere.

#include "l2m_core/geometry/gt_warp.h"
#include "tests/tensor_fixture.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <vector>

namespace l2m {
namespace {

using test::TensorFixture;

struct Tolerance {
  double warp_valid = 1e-9;  // on valid cells
  double warp_all = 1e-9;    // on every cell
  double rel_err = 1e-9;     // relative depth error, relative (floor 1)
};

Tolerance DenseTolerance(const torch::Device& device) {
  if (TORCH_VERSION_MAJOR == 1 && TORCH_VERSION_MINOR == 13 &&
      device.is_cpu()) {
    return {};
  }
  return {1e-6, 1e-4, 1e-4};
}

struct Call {
  int64_t h, w;
};

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64))
      .abs()
      .max()
      .item<double>();
}

// Same non-finite pattern, finite values within rtol (relative to each
// value, with a floor of 1 so that tiny errors near 0 compare absolutely).
void ExpectRelErrEqual(const torch::Tensor& got_any_device,
                       const torch::Tensor& ref,
                       const Tolerance& tol,
                       const std::string& what) {
  const torch::Tensor got = got_any_device.cpu();
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  EXPECT_TRUE(torch::equal(torch::isnan(got), torch::isnan(ref)))
      << what << ": NaN positions differ";
  EXPECT_TRUE(torch::equal(torch::isinf(got), torch::isinf(ref)))
      << what << ": inf positions differ";
  const torch::Tensor finite = torch::isfinite(ref) & torch::isfinite(got);
  const torch::Tensor g = got.masked_select(finite);
  const torch::Tensor r = ref.masked_select(finite);
  const double rel =
      ((g - r).abs() / r.abs().clamp_min(1.0)).max().item<double>();
  std::printf("  %-28s rel_depth_err max rel diff %.2e (tol %.0e)\n",
              what.c_str(),
              rel,
              tol.rel_err);
  EXPECT_LE(rel, tol.rel_err) << what;
}

// `valid` (ref's leading shape): the reference's validity.
void ExpectWarpEqual(const torch::Tensor& got_any_device,
                     const torch::Tensor& ref,
                     const torch::Tensor& valid,
                     const Tolerance& tol,
                     const std::string& what) {
  const torch::Tensor got = got_any_device.cpu();
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), torch::kFloat64) << what;
  const torch::Tensor on_valid = (valid.to(torch::kFloat32) > 0).unsqueeze(-1);
  const double err_valid =
      MaxAbsDiff(got.masked_select(on_valid), ref.masked_select(on_valid));
  const double err = MaxAbsDiff(got, ref);
  std::printf(
      "  %-28s warp max abs diff %.2e on valid cells (tol %.0e), %.2e on "
      "all (tol %.0e)\n",
      what.c_str(),
      err_valid,
      tol.warp_valid,
      err,
      tol.warp_all);
  EXPECT_LE(err_valid, tol.warp_valid) << what;
  EXPECT_LE(err, tol.warp_all) << what;
}

void ExpectMaskEqual(const torch::Tensor& got_any_device,
                     const torch::Tensor& ref,
                     const std::string& what) {
  const torch::Tensor got = got_any_device.cpu();
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  const int64_t flips = (got.to(torch::kFloat32) != ref.to(torch::kFloat32))
                            .sum()
                            .item<int64_t>();
  std::printf("  %-28s validity flips %lld of %lld (valid %lld)\n",
              what.c_str(),
              static_cast<long long>(flips),
              static_cast<long long>(ref.numel()),
              static_cast<long long>(
                  (ref.to(torch::kFloat32) > 0).sum().item<int64_t>()));
  EXPECT_EQ(flips, 0) << what;
}

class GtWarpParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    L2M_REQUIRE_SHARED(shared);
    fixture_ = TensorFixture::Load(shared + "/fixtures/roma_losses/gt_warp");
  }
  const torch::Tensor& Get(const std::string& name) const {
    return fixture_.Get(name);
  }
  // An input on the device under test.
  torch::Tensor In(const std::string& name) const {
    return fixture_.Get(name).to(device_);
  }
  void CheckEveryScale();
  void CheckDepthMapsOfDifferentSizes();
  void CheckKeypoints();

  TensorFixture fixture_;
  torch::Device device_ = torch::kCPU;
};

void GtWarpParityTest::CheckEveryScale() {
  // Scales 1, 2, 4, 8 of 48x64 and a non-dividing grid (like stride 14).
  for (const Call& call :
       std::vector<Call>{{48, 64}, {24, 32}, {12, 16}, {6, 8}, {5, 7}}) {
    const std::string key =
        "gt." + std::to_string(call.h) + "x" + std::to_string(call.w);
    const torch::Tensor hw = Get(key + ".HW");
    ASSERT_EQ(hw[0].item<int64_t>(), call.h);
    ASSERT_EQ(hw[1].item<int64_t>(), call.w);
    const DenseGtWarp gt = GetGtWarp(In("in.im_A_depth"),
                                     In("in.im_B_depth"),
                                     In("in.T_1to2"),
                                     In("in.K1"),
                                     In("in.K2"),
                                     call.h,
                                     call.w);
    const Tolerance tol = DenseTolerance(device_);
    ExpectWarpEqual(gt.warp, Get(key + ".warp"), Get(key + ".prob"), tol, key);
    ASSERT_EQ(gt.prob.scalar_type(), torch::kFloat32);
    ExpectMaskEqual(gt.prob, Get(key + ".prob"), key);
    ExpectRelErrEqual(
        gt.relative_depth_error, Get(key + ".rel_depth_err"), tol, key);
  }
}

void GtWarpParityTest::CheckDepthMapsOfDifferentSizes() {
  // Element 0 only, depth_B rendered at 36x60: covisibility and normalisation
  // use depth_B's size, unprojection depth_A's.
  const torch::Tensor hw = Get("mix.gt.24x32.HW");
  const DenseGtWarp gt = GetGtWarp(In("in.im_A_depth").narrow(0, 0, 1),
                                   In("mix.in.im_B_depth"),
                                   In("in.T_1to2").narrow(0, 0, 1),
                                   In("in.K1").narrow(0, 0, 1),
                                   In("mix.in.K2"),
                                   hw[0].item<int64_t>(),
                                   hw[1].item<int64_t>());
  const Tolerance tol = DenseTolerance(device_);
  ExpectWarpEqual(gt.warp,
                  Get("mix.gt.24x32.warp"),
                  Get("mix.gt.24x32.prob"),
                  tol,
                  "mix.gt.24x32");
  ExpectMaskEqual(gt.prob, Get("mix.gt.24x32.prob"), "mix.gt.24x32");
  ExpectRelErrEqual(gt.relative_depth_error,
                    Get("mix.gt.24x32.rel_depth_err"),
                    tol,
                    "mix.gt.24x32");
}

void GtWarpParityTest::CheckKeypoints() {
  // Borders, pixel centres/corners, sky, occluder edges, random points.
  const WarpedKeypoints warped = WarpKeypoints(In("kpts.in"),
                                               In("in.im_A_depth"),
                                               In("in.im_B_depth"),
                                               In("in.T_1to2"),
                                               In("in.K1"),
                                               In("in.K2"));
  ASSERT_EQ(warped.valid.scalar_type(), torch::kBool);
  const Tolerance strict;
  ExpectWarpEqual(
      warped.warp, Get("kpts.warp"), Get("kpts.valid"), strict, "kpts");
  ExpectMaskEqual(warped.valid, Get("kpts.valid"), "kpts");
  ExpectRelErrEqual(
      warped.relative_depth_error, Get("kpts.rel_depth_err"), strict, "kpts");
}

TEST_F(GtWarpParityTest, EveryScale) { CheckEveryScale(); }

TEST_F(GtWarpParityTest, DepthMapsOfDifferentSizes) {
  CheckDepthMapsOfDifferentSizes();
}

TEST_F(GtWarpParityTest, Keypoints) { CheckKeypoints(); }

// The same on CUDA (float64 there too): the trainer computes GT on the GPU.
TEST_F(GtWarpParityTest, Cuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  device_ = torch::kCUDA;
  CheckEveryScale();
  CheckDepthMapsOfDifferentSizes();
  CheckKeypoints();
}

}  // namespace
}  // namespace l2m
