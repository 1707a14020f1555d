#include "l2m_core/util/cpu_allocator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace l2m {
namespace {

bool IsAligned(const void* ptr, size_t alignment) {
  return reinterpret_cast<uintptr_t>(ptr) % alignment == 0;
}

TEST(CpuAllocator, InstallsOnceAndAlignsLargeBlocks) {
  UseHugePageCpuAllocator();
  UseHugePageCpuAllocator();  // Idempotent.
  EXPECT_TRUE(HugePageCpuAllocatorInUse());

  // Large blocks: 2 MiB-aligned, also sizes just over a page multiple.
  for (const int64_t num_floats :
       {int64_t{1} << 19, (int64_t{1} << 19) + 1, int64_t{3} << 20}) {
    const torch::Tensor large = torch::ones({num_floats});
    EXPECT_TRUE(IsAligned(large.data_ptr(), kHugePageSize)) << num_floats;
    EXPECT_EQ(large.sum().item<double>(), static_cast<double>(num_floats));
  }
  // Small blocks keep c10's 64-byte alignment.
  for (const int64_t num_floats : {1, 7, 1000, 100000}) {
    const torch::Tensor small = torch::full({num_floats}, 2.0f);
    EXPECT_TRUE(IsAligned(small.data_ptr(), 64)) << num_floats;
    EXPECT_EQ(small.sum().item<double>(), 2.0 * num_floats);
  }
  // Empty tensors allocate nothing.
  EXPECT_EQ(torch::empty({0}).numel(), 0);
}

TEST(CpuAllocator, TensorMathStillCorrect) {
  UseHugePageCpuAllocator();
  // ones(n, k) @ arange(k)-columns: every entry is 0 + 1 + ... + (k - 1).
  const int64_t n = 1024, k = 1024, m = 512;  // 4 MiB and 2 MiB operands.
  const torch::Tensor a = torch::ones({n, k});
  const torch::Tensor b =
      torch::arange(k, torch::kFloat).unsqueeze(1).expand({k, m}).contiguous();
  const torch::Tensor c = torch::matmul(a, b);
  EXPECT_TRUE(IsAligned(c.data_ptr(), kHugePageSize));
  const double expected = 0.5 * k * (k - 1);
  EXPECT_EQ(c.min().item<double>(), expected);
  EXPECT_EQ(c.max().item<double>(), expected);

  // Freed blocks are reused without corrupting live ones.
  std::vector<torch::Tensor> tensors;
  for (int i = 0; i < 8; ++i) {
    tensors.push_back(torch::full({int64_t{1} << 20}, static_cast<float>(i)));
    if (i % 2 == 1) tensors[i - 1] = torch::Tensor();
  }
  for (int i = 1; i < 8; i += 2) {
    EXPECT_EQ(tensors[i].min().item<float>(), static_cast<float>(i));
    EXPECT_EQ(tensors[i].max().item<float>(), static_cast<float>(i));
  }
}

}  // namespace
}  // namespace l2m
