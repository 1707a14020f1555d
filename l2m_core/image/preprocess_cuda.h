#pragma once

#include "l2m_core/image/resize.h"

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// PreprocessForMatcher on CUDA, bit-exact with the CPU path: Pillow's two
// resampling passes (horizontal into a uint8 intermediate of the rows the
// vertical pass reads, then vertical; int32 fixed point, the same taps,
// computed on the host), then float32 /255 and the optional ImageNet
// normalisation as true IEEE divisions. rgb: contiguous (H, W, 3) uint8 on a
// CUDA device; vtaps/htaps: ComputePilTaps(H, h) and (W, w). Returns
// (1, 3, h, w) float32 on that device. The full-size image never exists as
// floats on the GPU.
at::Tensor PreprocessForMatcherCuda(const at::Tensor& rgb,
                                    const PilResampleTaps& vtaps,
                                    const PilResampleTaps& htaps,
                                    int h,
                                    int w,
                                    bool normalize);

}  // namespace internal
}  // namespace l2m
