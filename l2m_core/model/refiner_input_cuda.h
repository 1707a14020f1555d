#pragma once

#include <ATen/core/Tensor.h>

namespace l2m {
namespace internal {

// The ConvRefiner's input, assembled in one CUDA pass over the output:
//   d (B, h, w, P) = [x | x_hat | emb | corr | 0 … 0]   (channels-last,
//   fp16/bf16)
// where
//   x_hat = grid_sample(y, grid) (bilinear, zeros, align_corners=False) with
//           grid = flow in d's dtype (the reference samples with the
//           low-precision grid);
//   emb   = disp_emb(emb_scale · (flow − identity)), the 1×1 conv 2 → E run
//           as autocast runs it: input, weights and bias rounded to d's
//           dtype, fp32 accumulation, the bias added to the rounded result.
// LibTorch takes ~10 launches for this (the grid cast, the displacement,
// its scaling and cast, the conv, its bias, one strided copy per part, the
// padding); at scale 1 of the upsample pass (12 M pixels at 8 pairs) they
// cost 3.3 ms against one write of d.
//
// x (B, Cx, h, w), y (B, Cy, Hs, Ws), corr (B, Cc, h, w; may be undefined):
// d's dtype, any strides. flow (B, 2, h, w) float32, any strides (the
// coarse pass's first flow is an expanded identity); identity (1, 2, h, w)
// contiguous float32 (IdentityGrid); emb_weight (E, 2, 1, 1) and emb_bias
// (E) float32. d must be contiguous with P ≥ Cx + Cy + E + Cc, P a multiple
// of 8.
struct RefinerInputParts {
  at::Tensor x, y, flow, identity, emb_weight, emb_bias, corr;
  double emb_scale = 1.0;
  // x_hat of image b samples y's image (b + support_offset) mod B: the
  // symmetric batch passes its own features with offset B/2.
  int64_t support_offset = 0;
};

void AssembleRefinerInput(const RefinerInputParts& parts, at::Tensor& d);

// Whether AssembleRefinerInput builds a buffer of `dtype` (fp16/bf16) for
// these parts' tensors: CUDA, 4-d, of that dtype.
bool AssembleRefinerInputSupported(const at::Tensor& x,
                                   const at::Tensor& y,
                                   at::ScalarType dtype);

}  // namespace internal
}  // namespace l2m
