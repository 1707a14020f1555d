#include "l2m_core/model/config.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#ifdef L2M_HAVE_NLOHMANN_JSON
#include <nlohmann/json.hpp>
#endif

namespace l2m {
namespace {

void Require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("MatcherConfig: " + what);
}

// Width of the VGG activation entering each MaxPool (feature scales 1, 2, 4, 8,
// ...), limited to the first num_layers modules (conv, BN, ReLU per width; 1
// module per pool).
std::map<int, int> VggScaleWidths(const VggConfig& vgg) {
  std::map<int, int> widths;
  int layer = 0;
  int width = 3;
  int scale = 1;
  bool ends_with_conv = false;
  for (int v : vgg.cfg) {
    if (layer >= vgg.num_layers) break;
    if (v == VggConfig::kVggMaxPool) {
      widths[scale] = width;
      scale *= 2;
      layer += 1;
      ends_with_conv = false;
    } else {
      width = v;
      layer += 3;
      ends_with_conv = true;
    }
  }
  // Convs after the last pool give one more, coarser map (CNN coarse
  // encoder); VGG19-BN features[:40] ends on a pool.
  if (ends_with_conv) widths[scale] = width;
  return widths;
}

// A ConvRefiner whose hidden width equals its input (depthwise blocks).
ConvRefinerConfig Refiner(int dim, int emb, int radius, int hidden_blocks) {
  ConvRefinerConfig r;
  r.in_dim = dim;
  r.hidden_dim = dim;
  r.disp_emb_dim = emb;
  r.local_corr_radius = radius;
  r.hidden_blocks = hidden_blocks;
  return r;
}

MatcherConfig FullSize() {
  MatcherConfig c;
  c.dino = DinoConfig::VitL14();
  c.proj = {{16, {1024, 512}},
            {8, {512, 512}},
            {4, {256, 256}},
            {2, {128, 64}},
            {1, {64, 9}}};
  c.gp = GpConfig();
  c.transformer = TransformerDecoderConfig();
  auto refiner = [](int dim, int emb, int radius) {
    return Refiner(dim, emb, radius, 8);
  };
  c.refiner = {{16, refiner(2 * 512 + 128 + 15 * 15, 128, 7)},
               {8, refiner(2 * 512 + 64 + 7 * 7, 64, 3)},
               {4, refiner(2 * 256 + 32 + 5 * 5, 32, 2)},
               {2, refiner(2 * 64 + 16, 16, 0)},
               {1, refiner(2 * 9 + 6, 6, 0)}};
  return c;
}

}  // namespace

DinoConfig DinoConfig::VitL14() { return DinoConfig(); }

DinoConfig DinoConfig::VitB14() {
  DinoConfig c;
  c.embed_dim = 768;
  c.depth = 12;
  c.num_heads = 12;
  return c;
}

void MatcherConfig::Check() const {
  Require(dino.embed_dim > 0 && dino.num_heads > 0 &&
              dino.embed_dim % dino.num_heads == 0,
          "dino.embed_dim must be a positive multiple of dino.num_heads");
  Require(dino.patch_size > 0 && dino.img_size % dino.patch_size == 0,
          "dino.img_size must be a multiple of dino.patch_size");
  Require(transformer.dim % transformer.num_heads == 0,
          "transformer.dim must be a multiple of transformer.num_heads");
  Require(!scales.empty() && scales.front() == gp_scale,
          "scales must start at gp_scale (the GP / transformer scale)");
  Require(gp_scale == 16, "only the DINO scale 16 can hold the GP");
  const std::map<int, int> vgg_widths = VggScaleWidths(vgg);
  for (int s : scales) {
    const std::string at = " at scale " + std::to_string(s);
    Require(proj.count(s) == 1, "missing proj" + at);
    Require(refiner.count(s) == 1, "missing refiner" + at);
    const ProjConfig& p = proj.at(s);
    if (s == gp_scale && coarse_encoder == CoarseEncoder::kDinov2) {
      Require(p.in_dim == dino.embed_dim,
              "proj in_dim must equal dino.embed_dim" + at);
    } else {
      Require(vgg_widths.count(s) == 1, "VGG has no feature map" + at);
      Require(p.in_dim == vgg_widths.at(s),
              "proj in_dim must equal the VGG width" + at);
    }
    const ConvRefinerConfig& r = refiner.at(s);
    const int corr = r.local_corr_radius > 0 ? (2 * r.local_corr_radius + 1) *
                                                   (2 * r.local_corr_radius + 1)
                                             : 0;
    Require(r.in_dim == 2 * p.out_dim + r.disp_emb_dim + corr,
            "refiner in_dim != 2·proj.out + disp_emb + (2r+1)²" + at);
    Require(r.hidden_dim > 0 && r.hidden_dim % r.in_dim == 0,
            "refiner hidden_dim must be a multiple of in_dim (depthwise)" + at);
    Require(r.kernel_size % 2 == 1, "refiner kernel_size must be odd" + at);
    Require(r.out_dim == 3,
            "refiner out_dim must be 3 (dx, dy, certainty)" + at);
  }
  Require(transformer.dim == gp.gp_dim + proj.at(gp_scale).out_dim,
          "transformer.dim must equal gp_dim + proj[16].out_dim");
  Require(coarse_h > 0 && coarse_w > 0 && coarse_h % CoarseStride() == 0 &&
              coarse_w % CoarseStride() == 0,
          "coarse resolution must be a positive multiple of the coarse "
          "stride (" +
              std::to_string(CoarseStride()) + ")");
  Require(!upsample_preds || (upsample_h > 0 && upsample_w > 0),
          "upsample resolution must be positive");
}

double MatcherConfig::ScaleFactorCoarse() const {
  if (scale_factor_rule == ScaleFactorRule::kRomaHead) {
    return std::sqrt(static_cast<double>(coarse_h) * coarse_w /
                     (560.0 * 560.0));
  }
  return 1.0;
}

double MatcherConfig::ScaleFactorUpsample() const {
  if (scale_factor_rule == ScaleFactorRule::kRomaHead) {
    return std::sqrt(static_cast<double>(upsample_h) * upsample_w /
                     (560.0 * 560.0));
  }
  // Same expression as the reference: sqrt(up0·up1 / (w·h)).
  return std::sqrt(static_cast<double>(upsample_h * upsample_w) /
                   (coarse_w * coarse_h));
}

MatcherConfig MatcherConfig::L2m() {
  MatcherConfig c = FullSize();
  c.name = "l2m";
  c.coarse_h = c.coarse_w = 672;
  c.upsample_h = c.upsample_w = 1344;
  c.normalize = false;
  return c;
}

MatcherConfig MatcherConfig::L2m560() {
  MatcherConfig c = L2m();
  c.name = "l2m_560";
  c.coarse_h = c.coarse_w = 560;
  c.upsample_h = c.upsample_w = 864;
  return c;
}

MatcherConfig MatcherConfig::RomaOutdoor() {
  MatcherConfig c = FullSize();
  c.name = "roma_outdoor";
  c.coarse_h = c.coarse_w = 560;
  c.upsample_h = c.upsample_w = 864;
  c.normalize = true;
  return c;
}

MatcherConfig MatcherConfig::RomaIndoor() {
  MatcherConfig c = RomaOutdoor();
  c.name = "roma_indoor";
  return c;
}

MatcherConfig MatcherConfig::L2mSmall() {
  constexpr int M = VggConfig::kVggMaxPool;
  MatcherConfig c;
  c.name = "l2m_s";
  c.coarse_encoder = CoarseEncoder::kCnn;
  // 11 convs: widths 32..192 up to scale 8 (the fine pyramid), then three
  // 256-wide convs at stride 16 for the coarse features.
  c.vgg.cfg = {32, 32, M, 64, 64, M, 128, 128, M, 192, 192, M, 256, 256, 256};
  c.vgg.num_layers = 11 * 3 + 4;
  c.proj = {{16, {256, 128}},
            {8, {192, 64}},
            {4, {128, 32}},
            {2, {64, 16}},
            {1, {32, 8}}};
  c.gp.gp_dim = 128;
  c.gp.use_cholesky = true;
  c.transformer.dim = 256;
  c.transformer.num_heads = 4;
  c.transformer.num_blocks = 2;
  // 32² anchors: one per ~14 px at 448, about the coarse cell (16 px).
  c.transformer.cls_res = 32;
  auto refiner = [](int dim, int emb, int radius) {
    return Refiner(dim, emb, radius, 4);
  };
  c.refiner = {{16, refiner(2 * 128 + 32 + 9 * 9, 32, 4)},
               {8, refiner(2 * 64 + 32 + 7 * 7, 32, 3)},
               {4, refiner(2 * 32 + 16 + 5 * 5, 16, 2)},
               {2, refiner(2 * 16 + 8, 8, 0)},
               {1, refiner(2 * 8 + 4, 4, 0)}};
  c.coarse_h = c.coarse_w = 448;
  c.upsample_h = c.upsample_w = 448;
  c.upsample_preds = false;
  // Trained from scratch on ImageNet-normalised inputs (as RoMa trains).
  c.normalize = true;
  return c;
}

MatcherConfig MatcherConfig::L2mTiny() {
  constexpr int M = VggConfig::kVggMaxPool;
  MatcherConfig c = L2mSmall();
  c.name = "l2m_tiny";
  c.vgg.cfg = {8, M, 8, M, 16, M, 16, M, 16};
  c.vgg.num_layers = 5 * 3 + 4;
  c.proj = {
      {16, {16, 16}}, {8, {16, 8}}, {4, {16, 8}}, {2, {8, 4}}, {1, {8, 4}}};
  c.gp.gp_dim = 16;
  c.transformer.dim = 32;
  c.transformer.num_heads = 2;
  c.transformer.num_blocks = 1;
  c.transformer.cls_res = 8;
  for (auto& [s, r] : c.refiner) {
    const int radius = s >= 4 ? 1 : 0;
    const int emb = 4;
    r.in_dim = r.hidden_dim =
        2 * c.proj.at(s).out_dim + emb +
        (radius > 0 ? (2 * radius + 1) * (2 * radius + 1) : 0);
    r.disp_emb_dim = emb;
    r.local_corr_radius = radius;
    r.hidden_blocks = 1;
  }
  c.coarse_h = c.coarse_w = 64;
  c.upsample_h = c.upsample_w = 64;
  return c;
}

MatcherConfig MatcherConfig::Preset(const std::string& name) {
  if (name == "l2m_s") return L2mSmall();
  if (name == "l2m_tiny") return L2mTiny();
  if (name == "l2m") return L2m();
  if (name == "l2m_560") return L2m560();
  if (name == "roma_outdoor") return RomaOutdoor();
  if (name == "roma_indoor") return RomaIndoor();
  throw std::invalid_argument(
      "unknown matcher preset '" + name +
      "' (l2m, l2m_560, roma_outdoor, roma_indoor, l2m_s, l2m_tiny)");
}

#ifdef L2M_HAVE_NLOHMANN_JSON
MatcherConfig LoadFixtureConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const nlohmann::json root = nlohmann::json::parse(in);
  const nlohmann::json& j = root.contains("config") ? root.at("config") : root;
  try {
    MatcherConfig c;
    c.name = "fixture";
    const auto& d = j.at("dino");
    c.dino.embed_dim = d.at("embed_dim");
    c.dino.depth = d.at("depth");
    c.dino.num_heads = d.at("num_heads");
    c.dino.mlp_ratio = d.at("mlp_ratio");
    c.dino.img_size = d.at("img_size");
    c.dino.patch_size = d.at("patch_size");
    c.dino.init_values = d.at("init_values");
    c.dino.qkv_bias = d.at("qkv_bias");
    c.dino.proj_bias = d.at("proj_bias");
    c.dino.ffn_bias = d.at("ffn_bias");
    c.dino.layernorm_eps = d.at("layernorm_eps");
    if (d.value("num_register_tokens", 0) != 0 ||
        d.value("ffn_layer", "mlp") != "mlp") {
      throw std::runtime_error(
          "register tokens / non-mlp ffn are not supported");
    }

    const auto& v = j.at("vgg");
    c.vgg.cfg.clear();
    for (const auto& e : v.at("cfg")) {
      c.vgg.cfg.push_back(e.is_string() ? VggConfig::kVggMaxPool
                                        : e.get<int>());
    }
    c.vgg.num_layers = v.at("num_layers");

    c.proj.clear();
    for (const auto& [key, dims] : j.at("proj").items()) {
      c.proj[std::stoi(key)] = {dims.at(0).get<int>(), dims.at(1).get<int>()};
    }

    const auto& gp = j.at("gp");
    if (gp.at("kernel") != "CosKernel" || gp.at("basis") != "fourier" ||
        !gp.at("no_cov").get<bool>() ||
        gp.at("learn_temperature").get<bool>() ||
        gp.at("only_attention").get<bool>()) {
      throw std::runtime_error(
          "only the CosKernel / fourier / no_cov GP is supported");
    }
    c.gp.T = gp.at("T");
    c.gp.gp_dim = gp.at("gp_dim");
    c.gp.sigma_noise = gp.at("sigma_noise");

    const auto& t = j.at("transformer_decoder");
    c.transformer.dim = t.at("dim");
    c.transformer.num_heads = t.at("num_heads");
    c.transformer.num_blocks = t.at("num_blocks");
    c.transformer.mlp_ratio = t.at("mlp_ratio");
    c.transformer.layernorm_eps = t.at("layernorm_eps");
    c.transformer.cls_res = t.at("cls_to_coord_res");
    if (t.at("out_dim").get<int>() != c.transformer.OutDim() ||
        t.at("pos_enc").get<bool>() || !t.at("is_classifier").get<bool>() ||
        t.at("qkv_bias").get<bool>()) {
      throw std::runtime_error("unsupported transformer decoder variant");
    }

    c.refiner.clear();
    for (const auto& [key, r] : j.at("conv_refiner").items()) {
      ConvRefinerConfig rc;
      rc.in_dim = r.at("in_dim");
      rc.hidden_dim = r.at("hidden_dim");
      rc.disp_emb_dim = r.at("displacement_emb_dim");
      rc.local_corr_radius = r.at("local_corr_radius").is_null()
                                 ? 0
                                 : r.at("local_corr_radius").get<int>();
      rc.hidden_blocks = r.at("hidden_blocks");
      rc.kernel_size = r.at("kernel_size");
      rc.out_dim = r.at("out_dim");
      rc.bn_momentum = r.at("bn_momentum");
      if (!r.at("dw").get<bool>() || r.at("displacement_emb") != "linear" ||
          r.at("norm_type") != "BatchNorm2d" ||
          r.at("sample_mode") != "bilinear" ||
          r.at("concat_logits").get<bool>() || r.at("no_im_B_fm").get<bool>() ||
          !r.at("use_bias_block_1").get<bool>()) {
        throw std::runtime_error("unsupported conv refiner variant at scale " +
                                 key);
      }
      c.refiner[std::stoi(key)] = rc;
    }

    const auto& dec = j.at("decoder");
    c.scales.clear();
    for (const auto& s : dec.at("scales"))
      c.scales.push_back(std::stoi(s.get<std::string>()));
    c.refine_init = dec.at("refine_init");

    const auto& m = j.at("matcher");
    c.coarse_h = m.at("coarse_res").at(0);
    c.coarse_w = m.at("coarse_res").at(1);
    c.upsample_h = m.at("upsample_res").at(0);
    c.upsample_w = m.at("upsample_res").at(1);
    c.upsample_preds = m.at("upsample_preds");
    c.symmetric = m.at("symmetric");
    c.attenuate_cert = m.at("attenuate_cert");
    c.sample_thresh = m.at("sample_thresh");
    c.normalize =
        false;  // a per-run choice of the fixture (run_main vs run_norm)
    c.Check();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}
#else
MatcherConfig LoadFixtureConfig(const std::string& path) {
  throw std::runtime_error("LoadFixtureConfig(" + path +
                           "): built without nlohmann_json");
}
#endif

}  // namespace l2m
