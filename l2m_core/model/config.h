#pragma once

#include <map>
#include <string>
#include <vector>

// Sizes of the RoMa / L2M++ matcher graph. Every module reads its sizes from
// here, so the same code builds the full-size network and the small
// parity-fixture network (REFERENCE_MODEL.md §5,
// fixtures/roma_parity/MANIFEST.md §5). Plain data: no LibTorch in this header.

namespace l2m {

// DINOv2 ViT (DinoVisionTransformer, block_chunks=0, ffn "mlp", no register
// tokens).
struct DinoConfig {
  int embed_dim = 1024;
  int depth = 24;
  int num_heads = 16;
  double mlp_ratio = 4.0;
  int img_size =
      518;  // pos_embed covers (img_size / patch_size)² patches + cls.
  int patch_size = 14;
  double init_values = 1.0;  // LayerScale; <= 0 means no LayerScale (Identity).
  bool qkv_bias = true;
  bool proj_bias = true;
  bool ffn_bias = true;
  double layernorm_eps = 1e-6;

  static DinoConfig VitL14();
  static DinoConfig VitB14();
  int PosGridSize() const { return img_size / patch_size; }
};

// VGG19-BN features[:num_layers]; cfg entries > 0 are conv widths, kVggMaxPool
// a MaxPool.
struct VggConfig {
  static constexpr int kVggMaxPool = -1;
  std::vector<int> cfg = {
      64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1};
  int num_layers = 40;
};

// 1×1 conv + BatchNorm projecting encoder features at one scale.
struct ProjConfig {
  int in_dim = 0;
  int out_dim = 0;
};

struct GpConfig {
  double T = 0.2;  // CosKernel temperature (learn_temperature=False).
  int gp_dim = 512;
  double sigma_noise = 0.1;
  // The reference uses torch.linalg.inv; Cholesky + cholesky_solve is faster
  // and within the fixture tolerance.
  bool use_cholesky = false;
};

struct TransformerDecoderConfig {
  int dim = 1024;  // = gp_dim + proj[16].out_dim
  int num_heads = 8;
  int num_blocks = 5;
  double mlp_ratio = 4.0;
  double layernorm_eps = 1e-5;
  int cls_res = 64;  // anchors: cls_res² classes + 1 certainty logit.
  int OutDim() const { return cls_res * cls_res + 1; }
};

struct ConvRefinerConfig {
  int in_dim = 0;
  int hidden_dim = 0;
  int disp_emb_dim = 0;
  int local_corr_radius = 0;  // 0: no local correlation.
  int hidden_blocks = 8;
  int kernel_size = 5;
  int out_dim = 3;
  double bn_momentum = 0.01;
};

// What produces the coarse (scale "16") features that feed the GP.
enum class CoarseEncoder {
  // DINOv2 ViT patch tokens at stride 14 (RoMa, L2M): weights from their own
  // checkpoint, outside the matcher state dict.
  kDinov2,
  // The VGG-style CNN continued past its fourth pool (stride 16), trained
  // with the matcher (l2m_s: no pretrained ViT is available to train from).
  kCnn,
};

// How the displacement embedding is scaled in the two passes.
enum class ScaleFactorRule {
  // L2M / RoMa before 2025: 1 in pass 1, sqrt(up_h·up_w / (coarse_h·coarse_w))
  // in pass 2.
  kL2m,
  // RoMa HEAD: sqrt(h·w / 560²) in both passes.
  kRomaHead,
};

struct MatcherConfig {
  std::string name = "l2m";
  CoarseEncoder coarse_encoder = CoarseEncoder::kDinov2;
  DinoConfig dino;
  VggConfig vgg;
  std::map<int, ProjConfig> proj;  // by scale (16, 8, 4, 2, 1)
  GpConfig gp;
  int gp_scale = 16;
  TransformerDecoderConfig transformer;
  std::map<int, ConvRefinerConfig> refiner;    // by scale
  std::vector<int> scales = {16, 8, 4, 2, 1};  // coarse to fine
  int refine_init = 4;

  int coarse_h = 672;
  int coarse_w = 672;
  int upsample_h = 1344;
  int upsample_w = 1344;
  bool upsample_preds = true;
  bool symmetric = true;
  bool attenuate_cert = true;
  // ImageNet mean/std on the inputs; applied by the image preprocessing,
  // recorded here.
  bool normalize = false;
  double sample_thresh = 0.05;
  ScaleFactorRule scale_factor_rule = ScaleFactorRule::kL2m;

  // Throws std::invalid_argument with a message naming the first inconsistency.
  void Check() const;

  // Stride of the coarse features: the coarse resolution is a multiple of it.
  int CoarseStride() const {
    return coarse_encoder == CoarseEncoder::kCnn ? 16 : dino.patch_size;
  }

  // Displacement-embedding scale factor of pass 1 / pass 2 (see
  // ScaleFactorRule).
  double ScaleFactorCoarse() const;
  double ScaleFactorUpsample() const;

  // Released L2M++ defaults: normalize off, coarse 672, upsample 1344.
  static MatcherConfig L2m();
  // L2M++ as its benchmarks run it: 560 / 864.
  static MatcherConfig L2m560();
  static MatcherConfig RomaOutdoor();
  static MatcherConfig RomaIndoor();
  // The compact matcher this project trains and ships (docs/TRAINING.md):
  // CNN coarse encoder, the same GP / transformer / refiner design with
  // reduced widths, one pass at 448.
  static MatcherConfig L2mSmall();
  // A minute graph of the same design for tests of the trainer (64 px).
  static MatcherConfig L2mTiny();
  // By name: "l2m", "l2m_560", "roma_outdoor", "roma_indoor", "l2m_s",
  // "l2m_tiny".
  static MatcherConfig Preset(const std::string& name);
};

// Reads the small-graph description written by the parity fixture generator
// (fixtures/roma_parity/config.json, key "config"). Throws on a missing/invalid
// field.
MatcherConfig LoadFixtureConfig(const std::string& path);

}  // namespace l2m
