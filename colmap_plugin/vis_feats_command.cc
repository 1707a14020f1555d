#include "colmap_plugin/vis_feats_command.h"

#include "colmap_plugin/option_manager.h"
#include "l2m_core/image/resize.h"
#include "l2m_core/model/dinov2.h"
#include "l2m_core/model/feature_pca.h"
#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "l2m_core/weights/model_cache.h"
#include "l2m_core/weights/strict_load.h"
#include "matcher_adapters/image_io.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace l2m {
namespace {

// L2M's Stage-1 encoders are ViT-B/14 at 518² (37 x 37 patches).
constexpr int kInputSize = 518;

// Loads a ViT-B/14 in the DINOv2 layout, FiT3D's timm layout (no
// mask_token, which inference never reads) or L2M's l2m_vit_base ("model"
// wrapper / "model." prefix, unwrapped by the reader). Every other key must
// match exactly: the reference's strict=False would keep a random ViT.
DinoVisionTransformer LoadEncoder(const std::string& name_or_path,
                                  std::string* layout) {
  DinoConfig config = DinoConfig::VitB14();
  config.img_size = kInputSize;
  DinoVisionTransformer vit(config);
  StateDict weights = ReadModelWeights(name_or_path);
  *layout = weights.Describe();
  if (weights.Find("mask_token") == nullptr &&
      weights.Find("pos_embed") != nullptr) {
    for (const auto& item : vit->named_parameters()) {
      if (item.key() == "mask_token") {
        weights.tensors.emplace_back(item.key(),
                                     torch::zeros_like(item.value()));
      }
    }
    *layout += ", no mask_token (FiT3D/timm layout)";
  }
  LoadStateDictStrict(*vit, weights, name_or_path);
  vit->eval();
  return vit;
}

// The reference's transform: Resize((518, 518)) on the PIL image (bilinear,
// antialiased, aspect not kept), ToTensor, ImageNet mean/std.
at::Tensor EncoderInput(const cv::Mat& bgr, int size) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  at::Tensor resized = torch::empty({size, size, 3}, torch::kUInt8);
  ResizePil(rgb.ptr<uint8_t>(),
            rgb.rows,
            rgb.cols,
            3,
            size,
            size,
            PilFilter::kBilinear,
            resized.data_ptr<uint8_t>());
  const at::Tensor mean =
      torch::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  const at::Tensor std =
      torch::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  return ((resized.permute({2, 0, 1}).to(torch::kFloat32) / 255.0f - mean) /
          std)
      .unsqueeze(0);
}

cv::Mat Tile(const at::Tensor& colours, int h, int w, int tile) {
  // (h*w, 3) in [0, 1] -> uint8 as the reference ((x * 255).astype(uint8)
  // truncates), RGB -> BGR, then bicubic up to the tile size.
  const at::Tensor bytes =
      (colours * 255).to(torch::kUInt8).view({h, w, 3}).flip({2}).contiguous();
  cv::Mat small(h, w, CV_8UC3, bytes.data_ptr<uint8_t>());
  cv::Mat out;
  cv::resize(small, out, cv::Size(tile, tile), 0, 0, cv::INTER_CUBIC);
  return out;
}

cv::Mat Titled(const cv::Mat& tile, const std::string& title) {
  const int band = std::max(24, tile.rows / 16);
  cv::Mat out(tile.rows + band, tile.cols, CV_8UC3, cv::Scalar(255, 255, 255));
  tile.copyTo(out(cv::Rect(0, band, tile.cols, tile.rows)));
  const double scale = band / 40.0;
  int baseline = 0;
  const cv::Size size =
      cv::getTextSize(title, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline);
  cv::putText(out,
              title,
              cv::Point(std::max(0, (tile.cols - size.width) / 2),
                        (band + size.height) / 2),
              cv::FONT_HERSHEY_SIMPLEX,
              scale,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  return out;
}

}  // namespace

int RunVisFeatsCommand(int argc, char** argv) {
  std::vector<std::string> images, encoders, labels;
  std::string output_path = "vis_feats.png", device_name = "cpu";
  int tile = 560, num_threads = 0, input_size = kInputSize;
  OptionManager options(
      "vis_feats",
      "L2M's feature visualisation: the 3-component PCA of ViT-B/14 patch "
      "features (518x518\ninput, ImageNet normalisation), one PCA per encoder "
      "fitted on all images together.\nEncoders: checkpoint files or cached "
      "model names in the DINOv2, FiT3D (no mask_token)\nor l2m_vit_base "
      "({\"model\": ...}, 'model.' prefix) layouts.");
  options.AddList("images", &images, "Images (one row each).", true);
  options.AddList("encoder",
                  &encoders,
                  "ViT-B/14 encoder weights (one column each; repeat or list).",
                  true);
  options.AddList(
      "labels", &labels, "Column titles (default: the encoder file names).");
  options.Add("output_path", &output_path, "The PNG to write.");
  options.Add("tile_size", &tile, "Pixels per picture (the reference: 560).");
  options.Add("input_size",
              &input_size,
              "Encoder input size, a multiple of 14 (the reference: 518; "
              "smaller is faster, the position embedding is interpolated).");
  options.Add("device", &device_name, "cpu or cuda[:N].");
  options.Add("num_threads", &num_threads, "CPU threads (0 = all cores).");
  if (!options.Parse(argc, argv)) return 0;
  if (!labels.empty() && labels.size() != encoders.size()) {
    throw std::invalid_argument("--labels needs one title per --encoder (" +
                                std::to_string(encoders.size()) + ")");
  }
  if (tile < 37 || tile > 4096) {
    throw std::invalid_argument("--tile_size must be in [37, 4096]");
  }
  if (input_size < 14 || input_size % 14 != 0) {
    throw std::invalid_argument(
        "--input_size must be a positive multiple of 14");
  }
  if (num_threads > 0) at::set_num_threads(num_threads);
  const torch::Device device(device_name);
  torch::NoGradGuard no_grad;

  std::vector<cv::Mat> photos;
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; i < images.size(); ++i) {
    photos.push_back(LoadMatcherImage(static_cast<int64_t>(i), images[i]).bgr);
    inputs.push_back(EncoderInput(photos.back(), input_size));
  }
  const at::Tensor batch = torch::cat(inputs).to(device);

  // columns[e][i]: the picture of image i under encoder e.
  std::vector<std::vector<cv::Mat>> columns;
  Progress progress("vis_feats encoders",
                    static_cast<int64_t>(encoders.size()));
  for (size_t e = 0; e < encoders.size(); ++e) {
    std::string layout;
    DinoVisionTransformer vit = LoadEncoder(encoders[e], &layout);
    vit->to(device);
    std::cout << encoders[e] << ": ViT-B/14, " << layout << "\n";
    // One image at a time keeps memory at one 1370-token forward.
    std::vector<at::Tensor> maps;
    for (int64_t i = 0; i < batch.size(0); ++i) {
      maps.push_back(vit->forward(batch.slice(0, i, i + 1))[0].to(torch::kCPU));
    }
    std::vector<at::Tensor> rows;
    for (const at::Tensor& m : maps) rows.push_back(FeatureMapToRows(m));
    const PcaBasis basis = FitPca(torch::cat(rows), 3);
    std::vector<cv::Mat> column;
    for (size_t i = 0; i < maps.size(); ++i) {
      column.push_back(Tile(
          PcaColours(rows[i], basis), maps[i].size(1), maps[i].size(2), tile));
    }
    columns.push_back(std::move(column));
    progress.Add();
  }
  progress.Finish();

  std::vector<cv::Mat> grid_rows;
  for (size_t i = 0; i < photos.size(); ++i) {
    std::vector<cv::Mat> row;
    cv::Mat photo;
    cv::resize(photos[i], photo, cv::Size(tile, tile), 0, 0, cv::INTER_AREA);
    row.push_back(Titled(photo, std::filesystem::path(images[i]).filename()));
    for (size_t e = 0; e < encoders.size(); ++e) {
      const std::string title =
          labels.empty() ? std::filesystem::path(encoders[e]).stem().string()
                         : labels[e];
      row.push_back(Titled(columns[e][i], title));
    }
    cv::Mat joined;
    cv::hconcat(row, joined);
    grid_rows.push_back(joined);
  }
  cv::Mat picture;
  cv::vconcat(grid_rows, picture);
  WritePngAtomic(output_path, picture);
  std::cout << "Wrote " << output_path << " (" << picture.cols << "x"
            << picture.rows << ": " << images.size() << " images x "
            << encoders.size() << " encoders)\n";
  return 0;
}

}  // namespace l2m
