#pragma once

// Disparity maps without OpenCV (row-major float arrays): the procedural
// stand-in for a monocular depth model, the reference's discontinuity test
// and disparity -> depth. lifting.h wraps them for cv::Mat; train_pairs.h
// uses them directly on machines without OpenCV.

#include <cstdint>
#include <vector>

namespace l2m {

// Procedural stand-in when no depth model is available: a ground plane
// rising to a far horizon band plus a few fronto-parallel and slanted layers
// with sharp borders (depth discontinuities) and smooth low-frequency relief.
// Deterministic in `seed`. Row-major width x height, before min-max
// normalisation (values > 0).
std::vector<float> ProceduralDisparityUnnormalized(int width,
                                                   int height,
                                                   uint64_t seed);

// The same, min-max normalised to [0.001, 1.001] as the reference's
// disparities (so depth = 1 / disparity lies in [~1, 1000]). Equal to
// lifting.h's cv::Mat ProceduralDisparity to within one float ulp.
std::vector<float> ProceduralDisparityValues(int width,
                                             int height,
                                             uint64_t seed);

// The reference's get_visible_mask: a vertex is visible iff
// exp(-alpha_scale * |Sobel(disp)|) > alpha_threshold, with kornia's
// normalised 3x3 Sobel (sum |k| = 8), replicate border and magnitude
// sqrt(gx^2 + gy^2). Non-finite disparities are never visible. Writes
// width * height bytes (255 = visible, 0 = not) to `mask`.
void ComputeVisibleVertexMask(const float* disparity,
                              int width,
                              int height,
                              double alpha_scale,
                              double alpha_threshold,
                              uint8_t* mask);

// depth = 1 / disparity; 0 where the disparity is unknown (non-finite or
// <= 0), as 0 means "unsupervised" downstream.
std::vector<float> DisparityToDepthValues(const std::vector<float>& disparity);

}  // namespace l2m
