#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace l2m {

// An 8-bit RGB image, row-major HWC.
struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a JPEG file with libjpeg(-turbo), the decoder every machine here
// has (the GPU machine has no OpenCV). Throws std::runtime_error naming the
// file when it is missing or not a valid JPEG, or when l2m was built
// without libjpeg.
RgbImage DecodeJpegFile(const std::string& path);

}  // namespace l2m
