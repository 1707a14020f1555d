#include "l2m_core/util/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <mutex>
#include <new>
#include <sys/mman.h>

namespace l2m {
namespace {

// c10's own CPU alignment (vectorised kernels assume it for small blocks).
constexpr size_t kSmallAlignment = 64;

void FreeBlock(void* ptr) { std::free(ptr); }

// LibTorch 2.3 made allocate() non-const and copy_data() pure virtual
// (Debian ships 1.13; the GPU machine 2.x).
#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define L2M_ALLOCATE_CONST
#else
#define L2M_ALLOCATE_CONST const
#endif

class HugePageCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t num_bytes) L2M_ALLOCATE_CONST override {
    void* data = nullptr;
    if (num_bytes > 0) {
      const bool huge = num_bytes >= kHugePageSize;
      // Rounding up to whole huge pages lets the kernel back the whole range
      // with 2 MiB pages (a partial last page would fall back to 4 KiB).
      const size_t size =
          huge ? (num_bytes + kHugePageSize - 1) / kHugePageSize * kHugePageSize
               : num_bytes;
      if (posix_memalign(&data, huge ? kHugePageSize : kSmallAlignment, size) !=
          0) {
        throw std::bad_alloc();
      }
      // Advice only: without THP support it fails, and the block still works.
      if (huge) madvise(data, size, MADV_HUGEPAGE);
    }
    return {data, data, &FreeBlock, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &FreeBlock; }

#if TORCH_VERSION_MAJOR > 2 || \
    (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, size_t count) const override {
    std::memcpy(dest, src, count);
  }
#endif
};

bool g_installed = false;

}  // namespace

void UseHugePageCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // glibc serves large blocks with their own mmap and unmaps them on free,
    // so every forward pass faulted its activations in again. Serving every
    // block from the heap (M_MMAP_MAX 0) and never trimming it keeps the
    // pages, and their huge-page backing, for the next allocation.
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    // Static: c10 keeps the pointer for the life of the process.
    static HugePageCpuAllocator allocator;
    // Priority 1 wins over c10's default CPU allocator (registered at 0).
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
    g_installed = true;
  });
}

bool HugePageCpuAllocatorInUse() { return g_installed; }

}  // namespace l2m
