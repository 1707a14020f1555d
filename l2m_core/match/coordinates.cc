#include "l2m_core/match/coordinates.h"

#include <torch/torch.h>

#include <stdexcept>

namespace l2m {
namespace {

void CheckCoords(const at::Tensor& coords, int64_t last, const char* what) {
  if (coords.dim() < 1 || coords.size(-1) != last) {
    throw std::invalid_argument(std::string(what) +
                                ": expected last dimension " +
                                std::to_string(last));
  }
}

void CheckSize(int64_t h, int64_t w, const char* what) {
  if (h <= 0 || w <= 0) {
    throw std::invalid_argument(std::string(what) +
                                ": image size must be positive");
  }
}

}  // namespace

at::Tensor ToPixelCoordinates(const at::Tensor& coords, int64_t h, int64_t w) {
  CheckCoords(coords, 2, "ToPixelCoordinates");
  CheckSize(h, w, "ToPixelCoordinates");
  // Same op order as the reference: W/2 * (x + 1).
  return torch::stack({(coords.select(-1, 0) + 1) * (w / 2.0),
                       (coords.select(-1, 1) + 1) * (h / 2.0)},
                      -1);
}

at::Tensor ToNormalizedCoordinates(const at::Tensor& coords,
                                   int64_t h,
                                   int64_t w) {
  CheckCoords(coords, 2, "ToNormalizedCoordinates");
  CheckSize(h, w, "ToNormalizedCoordinates");
  return torch::stack({coords.select(-1, 0) * (2.0 / w) - 1,
                       coords.select(-1, 1) * (2.0 / h) - 1},
                      -1);
}

at::Tensor MatchesToPixelCoordinates(const at::Tensor& matches,
                                     int64_t h_a,
                                     int64_t w_a,
                                     int64_t h_b,
                                     int64_t w_b) {
  CheckCoords(matches, 4, "MatchesToPixelCoordinates");
  return torch::cat({ToPixelCoordinates(matches.narrow(-1, 0, 2), h_a, w_a),
                     ToPixelCoordinates(matches.narrow(-1, 2, 2), h_b, w_b)},
                    -1);
}

}  // namespace l2m
