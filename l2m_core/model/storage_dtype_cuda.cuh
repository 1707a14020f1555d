#pragma once

// Shared by l2m's fp16/bf16 CUDA kernels (included from .cu files only).

#include <ATen/core/Tensor.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace l2m {
namespace internal {

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

}  // namespace internal
}  // namespace l2m
