#pragma once

#include <cstddef>

namespace l2m {

// Blocks of at least this size get 2 MiB alignment and transparent huge pages.
constexpr size_t kHugePageSize = size_t{2} << 20;

// Installs (once per process; later calls do nothing) a CPU allocator for
// LibTorch that
//  - gives blocks >= 2 MiB a 2 MiB-aligned, 2 MiB-rounded range and asks the
//    kernel for transparent huge pages there (madvise(MADV_HUGEPAGE)), and
//  - makes glibc keep freed memory in its heap (no mmap per large block, no
//    trimming) so the next forward pass reuses pages that are already faulted.
// Why: on the development VM touching fresh memory dominates the ViT/VGG
// forward passes (every large activation was a fresh mmap, faulted 4 KiB at
// a time and unmapped again on free); docs/PLATFORM.md measured 4-5x on the
// ViTs. The cost is that freed memory stays with the process until it ends.
// Call it before the first tensor is allocated: tensors allocated earlier
// keep their own deleter and are freed correctly either way.
void UseHugePageCpuAllocator();

// Whether UseHugePageCpuAllocator() has installed the allocator.
bool HugePageCpuAllocatorInUse();

}  // namespace l2m
