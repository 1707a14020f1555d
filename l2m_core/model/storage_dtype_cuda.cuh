#pragma once

// Shared by l2m's fp16/bf16 CUDA kernels (included from .cu files only).

#include <ATen/core/Tensor.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace l2m {
namespace internal {

// Element strides of a 4-d (B, C, H, W) tensor, for kernels that read any
// layout.
struct Strides {
  long long b, c, y, x;
};

inline Strides StridesOf(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// Calls launch(tag) with a value of x's storage type, __half for fp16 and
// __nv_bfloat16 otherwise, so one generic lambda picks the kernel instance.
template <typename Launch>
void ForStorageDtype(const at::Tensor& x, Launch&& launch) {
  if (x.scalar_type() == at::kHalf) {
    launch(__half());
  } else {
    launch(__nv_bfloat16());
  }
}

// x rounded to T and back: the value autocast's cast would hand an op.
template <typename T>
__device__ inline float Round(float x) {
  return static_cast<float>(T(x));
}

// Two floats rounded to T and packed into one 32-bit word (a, b in the low
// and high halves), as one store of two neighbouring channels.
__device__ inline unsigned PackPair(float a, float b, __half) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const unsigned*>(&h);
}

__device__ inline unsigned PackPair(float a, float b, __nv_bfloat16) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const unsigned*>(&h);
}

// c += a (16×16, row-major) · b (16×8, col-major) on the tensor cores,
// fp32 accumulation: one mma.sync.m16n8k16 with its fragments in registers.
__device__ inline void Mma16816(
    float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1, __half) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ inline void Mma16816(float (&c)[4],
                                const unsigned (&a)[4],
                                unsigned b0,
                                unsigned b1,
                                __nv_bfloat16) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Asynchronous 16-byte global → shared copy (zero-filled when !valid), so a
// tile's whole halo is in flight at once.
__device__ inline void CopyAsync16(void* dst, const void* src, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s),
               "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ inline void CopyAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ inline void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8×8 b16 matrices from shared memory, one row address a lane.
__device__ inline void LoadMatrixX4(unsigned (&r)[4], const void* row) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(s));
}

}  // namespace internal
}  // namespace l2m
