#pragma once

// Image files without OpenCV: libjpeg(-turbo) and libpng, which every
// machine here has (the GPU machine has no OpenCV). Used by `l2m_bench` and
// by the on-the-fly training pairs (synth/train_pairs.h).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace l2m {

// An 8-bit RGB image, row-major HWC.
struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a JPEG file. Throws std::runtime_error naming the file when it is
// missing or not a valid JPEG, or when l2m was built without libjpeg.
RgbImage DecodeJpegFile(const std::string& path);

// The same into memory the caller provides: once the header is read,
// `destination(height, width)` returns room for height·width·3 bytes (RGB,
// row-major), e.g. pinned memory the GPU uploads from without a copy.
using JpegDestination = std::function<uint8_t*(int height, int width)>;
void DecodeJpegFileInto(const std::string& path,
                        const JpegDestination& destination);

// Decodes a PNG file (grey, grey + alpha, RGB, RGBA, palette; 16-bit is
// reduced to 8 bits, alpha dropped). Throws naming the file as above, or
// when l2m was built without libpng.
RgbImage DecodePngFile(const std::string& path);

// JPEG or PNG by the file's first bytes (not its extension); anything else
// throws naming the file.
RgbImage DecodeImageFile(const std::string& path);

// Writes 8-bit RGB files (debug pictures, test inputs); throw naming the
// file when it cannot be written or the codec is missing.
void WriteJpegFile(const std::string& path,
                   const RgbImage& image,
                   int quality = 95);
void WritePngFile(const std::string& path, const RgbImage& image);

}  // namespace l2m
