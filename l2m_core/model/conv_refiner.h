#pragma once

#include "l2m_core/model/config.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <vector>

// RoMa's ConvRefiner for one scale: input cat(f_A, f_B(warp),
// disp_emb(displacement), local_corr), then `block1` and `hidden_blocks`
// ([depthwise k×k conv, BN, ReLU, 1×1 conv] each) and `out_conv` (fp32) → 2
// displacement channels + 1 certainty logit.

namespace l2m {

struct Refinement {
  torch::Tensor delta_flow;       // (B, 2, h, w), raw (the decoder scales it)
  torch::Tensor delta_certainty;  // (B, 1, h, w)
};

class ConvRefinerImpl : public torch::nn::Module {
 public:
  explicit ConvRefinerImpl(const ConvRefinerConfig& config);

  // x: projected query features (B, C, h, w);
  // y: projected support features (B, C, h', w');
  // flow: current warp (B, 2, h, w) in normalised coords;
  // scale_factor scales the displacement embedding:
  //   disp_emb(40/32 · scale_factor · (flow − grid));
  // support_offset: image b of x is refined against y's image
  // (b + support_offset) mod B (the symmetric batch passes its own features
  // with B/2 instead of a copy with the halves swapped).
  Refinement forward(const torch::Tensor& x,
                     const torch::Tensor& y,
                     const torch::Tensor& flow,
                     double scale_factor,
                     int64_t support_offset = 0);

  // Inference only, after loading: folds each block's BatchNorm into its
  // depthwise conv and skips it from then on. On CUDA this also enables the
  // fused path (see CudaInference).
  void FoldBatchNorm();

 private:
  // The blocks' weights as the fused CUDA path wants them, in one dtype:
  // channels zero-padded to a multiple of 8 (cuBLAS/cuDNN otherwise pad
  // every call and fall back to slow kernels for RoMa's 1377/1137/569
  // channels; zero channels stay zero through depthwise, ReLU and 1×1, so
  // the result is unchanged): depthwise weights (C, 1, K, K) channels-last
  // and 1×1 weights (C, C) in the compute dtype, biases of the depthwise
  // convs (BN folded in) in float32.
  struct FusedWeights {
    at::ScalarType dtype = at::kFloat;
    int64_t channels = 0;  // padded
    std::vector<torch::Tensor> dw_weight, dw_bias, pw_weight, pw_bias;
    // For the one-kernel block (RefinerBlockFused): depthwise taps (K·K, C)
    // and the 1×1 biases, float32.
    std::vector<torch::Tensor> dw_taps, pw_bias_float;
    torch::Tensor out_weight, out_bias;  // float32, (out_dim, channels)
  };

  torch::Tensor RunBlock(torch::nn::Sequential& block,
                         const torch::Tensor& x) const;
  bool CanRunFused(const torch::Tensor& x) const;
  const FusedWeights& Fused(at::ScalarType dtype, torch::Device device);
  // The blocks and out_conv on CUDA for inference: parts copied once into a
  // padded channels-last buffer (fp32 and other cases AssembleOnGpu does not
  // take), then per block either one kernel for the
  // whole block (few channels, fp16/bf16: RefinerBlockFused) or cuDNN's
  // depthwise conv, one bias+ReLU pass and the 1×1 conv as one GEMM with its
  // bias (cuBLASLt epilogue).
  // parts: x, x_hat, emb[, corr]; an undefined x_hat is sampled from y at
  // grid straight into the buffer (see SampleIntoBuffer).
  Refinement CudaInference(const std::vector<torch::Tensor>& parts,
                           at::ScalarType dtype,
                           const torch::Tensor& y,
                           const torch::Tensor& grid);
  // The blocks and out_conv from the assembled, padded channels-last input
  // d (B, h, w, P) of the compute dtype.
  Refinement CudaBlocks(torch::Tensor d, at::ScalarType dtype);
  // Whether one kernel assembles the input (AssembleRefinerInput): fp16/bf16
  // features in the compute dtype, float32 flow and disp_emb weights.
  bool AssembleOnGpu(const torch::Tensor& x,
                     const torch::Tensor& y,
                     const torch::Tensor& flow) const;
  // Whether CudaInference samples x_hat itself (GridSampleInto takes y).
  bool SampleIntoBuffer(const torch::Tensor& y, const torch::Tensor& x) const;

  ConvRefinerConfig config_;
  bool bn_folded_ = false;
  FusedWeights fused_;
  torch::nn::Sequential block1_{nullptr};
  torch::nn::ModuleList hidden_blocks_{nullptr};  // of Sequential blocks
  torch::nn::Conv2d out_conv_{nullptr};
  torch::nn::Conv2d disp_emb_{nullptr};
};
TORCH_MODULE(ConvRefiner);

}  // namespace l2m
