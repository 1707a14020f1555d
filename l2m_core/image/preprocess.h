#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace l2m {

// The matcher's input transform (RoMa/L2M `get_tuple_transform_ops`): PIL
// bicubic resize to (h, w) (stretched, no aspect keep), then /255 in float32,
// then optionally ImageNet mean/std. Returns a contiguous float32 tensor of
// shape (1, 3, h, w) on the image's device.
//
// `rgb` is an 8-bit HWC RGB image: a uint8 tensor of shape (H, W, 3) (any
// strides; on the CPU, or on CUDA where l2m has its CUDA kernels: the same
// bits, computed there, so only the uint8 image crosses the bus), or a raw
// buffer of src_h * src_w * 3 bytes.
at::Tensor PreprocessForMatcher(const at::Tensor& rgb,
                                int h,
                                int w,
                                bool normalize);
at::Tensor PreprocessForMatcher(
    const uint8_t* rgb, int src_h, int src_w, int h, int w, bool normalize);

// One image's inputs for the matcher's two passes: `coarse` at (coarse_h,
// coarse_w) and, when up_h > 0, `upsample` at (up_h, up_w), each as
// PreprocessForMatcher, from the same (H, W, 3) uint8 image (on its device).
struct MatcherImageInputs {
  at::Tensor coarse, upsample;
};
MatcherImageInputs PreprocessForMatcherPasses(const at::Tensor& rgb,
                                              int coarse_h,
                                              int coarse_w,
                                              int up_h,
                                              int up_w,
                                              bool normalize);

// Whether PreprocessForMatcher takes CUDA images (l2m built with its CUDA
// kernels).
bool PreprocessForMatcherRunsOnCuda();

// PIL-exact bicubic resize of a uint8 (H, W, C) tensor, C in 1..4; returns a
// contiguous uint8 (h, w, C) tensor. See ResizeBicubicPil in resize.h.
at::Tensor ResizeBicubicPil(const at::Tensor& image_hwc, int h, int w);

}  // namespace l2m
