#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace l2m {

// Normalised matcher coordinates (align_corners=False: pixel centre i of n is
// at -1 + (2i + 1)/n) <-> pixel coordinates in COLMAP's convention (top-left
// pixel centre at (0.5, 0.5)): x_px = W/2 * (x + 1), y_px = H/2 * (y + 1).
// For OpenCV's convention (centre of the first pixel at 0) subtract 0.5.
// `coords` has last dimension 2 (x, y); any leading shape, float dtype.
at::Tensor ToPixelCoordinates(const at::Tensor& coords, int64_t h, int64_t w);
at::Tensor ToNormalizedCoordinates(const at::Tensor& coords,
                                   int64_t h,
                                   int64_t w);

// Matches (..., 4) = [x_A, y_A, x_B, y_B] in normalised coordinates to pixel
// coordinates of images A (h_a x w_a) and B (h_b x w_b).
at::Tensor MatchesToPixelCoordinates(const at::Tensor& matches,
                                     int64_t h_a,
                                     int64_t w_a,
                                     int64_t h_b,
                                     int64_t w_b);

}  // namespace l2m
