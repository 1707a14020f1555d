#include "l2m_core/image/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace l2m {
namespace {

// Pillow's fixed point: 32 bits minus 8 for the pixel value minus 2 headroom
// bits (the cubic has negative lobes, partial sums can exceed 255).
constexpr int kPrecisionBits = 32 - 8 - 2;

// Keys cubic convolution kernel with a = -0.5, in Pillow's exact expression
// order so that the double results (and hence the rounded coefficients) match.
double BicubicFilter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) {
    x = -x;
  }
  if (x < 1.0) {
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  }
  if (x < 2.0) {
    return (((x - 5) * x + 8) * x - 4) * a;
  }
  return 0.0;
}

constexpr double kBicubicSupport = 2.0;

// Pillow's triangle filter (Image.BILINEAR), support 1.
double BilinearFilter(double x) {
  if (x < 0.0) {
    x = -x;
  }
  if (x < 1.0) {
    return 1.0 - x;
  }
  return 0.0;
}

inline uint8_t Clip8(int32_t acc) {
  // Arithmetic shift = floor division, as Pillow's lookup table indexing.
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

void CheckArgs(const uint8_t* src,
               int src_h,
               int src_w,
               int channels,
               int dst_h,
               int dst_w) {
  if (src == nullptr || src_h <= 0 || src_w <= 0 || dst_h <= 0 || dst_w <= 0 ||
      channels < 1 || channels > 4) {
    throw std::invalid_argument(
        "ResizeBicubicPil: bad arguments (src " + std::to_string(src_h) + "x" +
        std::to_string(src_w) + "x" + std::to_string(channels) + ", dst " +
        std::to_string(dst_h) + "x" + std::to_string(dst_w) + ")");
  }
}

}  // namespace

namespace internal {

PilResampleTaps ComputePilBicubicTaps(int in_size, int out_size) {
  return ComputePilTaps(in_size, out_size, PilFilter::kBicubic);
}

PilResampleTaps ComputePilTaps(int in_size, int out_size, PilFilter filter) {
  double (*const kernel)(double) =
      filter == PilFilter::kBicubic ? BicubicFilter : BilinearFilter;
  const double filter_support =
      filter == PilFilter::kBicubic ? kBicubicSupport : 1.0;
  // Pillow passes the box edges as float; for a full-image box they are exact.
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter_support * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;

  PilResampleTaps taps;
  taps.taps_per_output = ksize;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.coeffs.assign(static_cast<size_t>(out_size) * ksize, 0);

  std::vector<double> k(ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // (int) truncation, as in Pillow ("round" of a value that is >= -0.5
    // after the +0.5, so truncation toward zero is what it does).
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) {
      xmin = 0;
    }
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) {
      xmax = in_size;
    }
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = kernel((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) {
        k[x] /= ww;
      }
    }
    int32_t* out = &taps.coeffs[static_cast<size_t>(xx) * ksize];
    for (int x = 0; x < xmax; ++x) {
      const double scaled = k[x] * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    taps.first[xx] = xmin;
    taps.count[xx] = xmax;
  }
  return taps;
}

}  // namespace internal

void ResizeBicubicPil(const uint8_t* src,
                      int src_h,
                      int src_w,
                      int channels,
                      int dst_h,
                      int dst_w,
                      uint8_t* dst) {
  ResizePil(
      src, src_h, src_w, channels, dst_h, dst_w, PilFilter::kBicubic, dst);
}

void ResizePil(const uint8_t* src,
               int src_h,
               int src_w,
               int channels,
               int dst_h,
               int dst_w,
               PilFilter filter,
               uint8_t* dst) {
  CheckArgs(src, src_h, src_w, channels, dst_h, dst_w);
  if (dst == nullptr) {
    throw std::invalid_argument("ResizeBicubicPil: dst is null");
  }
  const bool need_horizontal = dst_w != src_w;
  const bool need_vertical = dst_h != src_h;
  const size_t src_row = static_cast<size_t>(src_w) * channels;
  const size_t dst_row = static_cast<size_t>(dst_w) * channels;
  if (!need_horizontal && !need_vertical) {
    std::memcpy(dst, src, src_row * src_h);
    return;
  }

  const internal::PilResampleTaps vtaps =
      internal::ComputePilTaps(src_h, dst_h, filter);
  // Only the source rows the vertical pass reads go through the horizontal
  // pass (Pillow does the same; it only saves work).
  const int row_first = vtaps.first.front();
  const int row_last = vtaps.first.back() + vtaps.count.back();

  // Horizontal pass into an intermediate uint8 image (Pillow rounds and clamps
  // here, which is part of the exact result).
  std::vector<uint8_t> temp;
  const uint8_t* vin = src;
  size_t vin_row = src_row;
  int vin_offset = 0;
  if (need_horizontal) {
    const internal::PilResampleTaps htaps =
        internal::ComputePilTaps(src_w, dst_w, filter);
    const int temp_rows = row_last - row_first;
    temp.resize(static_cast<size_t>(temp_rows) * dst_row);
    for (int y = 0; y < temp_rows; ++y) {
      const uint8_t* in_row =
          src + static_cast<size_t>(y + row_first) * src_row;
      uint8_t* out_row = temp.data() + static_cast<size_t>(y) * dst_row;
      for (int xx = 0; xx < dst_w; ++xx) {
        const int xmin = htaps.first[xx];
        const int n = htaps.count[xx];
        const int32_t* k =
            &htaps.coeffs[static_cast<size_t>(xx) * htaps.taps_per_output];
        for (int c = 0; c < channels; ++c) {
          int32_t acc = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < n; ++x) {
            acc +=
                static_cast<int32_t>(in_row[(x + xmin) * channels + c]) * k[x];
          }
          out_row[xx * channels + c] = Clip8(acc);
        }
      }
    }
    vin = temp.data();
    vin_row = dst_row;
    vin_offset = row_first;
  }

  if (!need_vertical) {
    std::memcpy(dst, vin, dst_row * dst_h);
    return;
  }
  // Vertical pass.
  for (int yy = 0; yy < dst_h; ++yy) {
    const int ymin = vtaps.first[yy] - vin_offset;
    const int n = vtaps.count[yy];
    const int32_t* k =
        &vtaps.coeffs[static_cast<size_t>(yy) * vtaps.taps_per_output];
    uint8_t* out_row = dst + static_cast<size_t>(yy) * dst_row;
    for (size_t i = 0; i < dst_row; ++i) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < n; ++y) {
        acc += static_cast<int32_t>(vin[(ymin + y) * vin_row + i]) * k[y];
      }
      out_row[i] = Clip8(acc);
    }
  }
}

std::vector<uint8_t> ResizeBicubicPil(const uint8_t* src,
                                      int src_h,
                                      int src_w,
                                      int channels,
                                      int dst_h,
                                      int dst_w) {
  CheckArgs(src, src_h, src_w, channels, dst_h, dst_w);
  std::vector<uint8_t> dst(static_cast<size_t>(dst_h) * dst_w * channels);
  ResizeBicubicPil(src, src_h, src_w, channels, dst_h, dst_w, dst.data());
  return dst;
}

}  // namespace l2m
