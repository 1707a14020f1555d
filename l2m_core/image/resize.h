#pragma once

#include <cstdint>
#include <vector>

namespace l2m {

// Reproduces Pillow's `Image.resize((dst_w, dst_h), Image.BICUBIC)` on an
// interleaved 8-bit image (HWC, row-major, `channels` in 1..4) bit-exactly:
// Keys cubic with a = -0.5, support scaled by the downscale factor
// (antialiasing), fixed-point coefficients with 22 fractional bits, horizontal
// pass first, and rounding/clamping to uint8 after each pass. RoMa/L2M feed
// the network with exactly this (torchvision Resize on a PIL image), and
// OpenCV's INTER_CUBIC/INTER_AREA differ by up to 134/255 resp. 19/255.
// `dst` must hold dst_h * dst_w * channels bytes and must not alias `src`.
void ResizeBicubicPil(const uint8_t* src,
                      int src_h,
                      int src_w,
                      int channels,
                      int dst_h,
                      int dst_w,
                      uint8_t* dst);

std::vector<uint8_t> ResizeBicubicPil(const uint8_t* src,
                                      int src_h,
                                      int src_w,
                                      int channels,
                                      int dst_h,
                                      int dst_w);

// Pillow's resampling filters that this port reproduces bit-exactly.
enum class PilFilter { kBilinear, kBicubic };

// Pillow's `Image.resize(..., filter)`, the same algorithm as above with the
// given filter (BILINEAR is torchvision's default Resize on PIL images).
void ResizePil(const uint8_t* src,
               int src_h,
               int src_w,
               int channels,
               int dst_h,
               int dst_w,
               PilFilter filter,
               uint8_t* dst);

namespace internal {

// Per-output-sample filter taps of one axis, as Pillow's precompute_coeffs()
// followed by normalize_coeffs_8bpc(): output i reads inputs
// [first[i], first[i] + count[i]) with weights
// coeffs[i * taps_per_output .. + count[i]) in 1/2^22 units.
struct PilResampleTaps {
  int taps_per_output = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> coeffs;
};

PilResampleTaps ComputePilBicubicTaps(int in_size, int out_size);
PilResampleTaps ComputePilTaps(int in_size, int out_size, PilFilter filter);

}  // namespace internal
}  // namespace l2m
