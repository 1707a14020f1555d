#pragma once

#include "matcher_adapters/matcher.h"

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>

namespace l2m {

// Bits per channel of the image file as it is stored (8, 16, 32, 64). PNG is
// read from its header; other formats that can hold more than 8 bits (TIFF,
// PNM, JPEG 2000, EXR, ...) are decoded; formats that are always 8-bit (JPEG,
// BMP, WebP, ...) are not read beyond their signature. Throws
// std::runtime_error naming the file when it is missing, unreadable or not a
// decodable image.
int ImageBitDepth(const std::string& path);

// True for 8-bit images (the only depth matchers take: OpenCV would otherwise
// silently scale 16-bit data down on load). *reason says why not, if given.
bool IsSupportedImageDepth(const std::string& path,
                           std::string* reason = nullptr);

// Loads an image for matching as 8-bit BGR. Throws std::runtime_error naming
// the file when it is missing, unreadable, corrupt, or not 8-bit
// ("unsupported bit depth 16").
MatcherImage LoadMatcherImage(int64_t image_id, const std::string& path);

// Encodes `image` as PNG and writes it atomically (WriteFileAtomic): readers
// never see a half-written picture. Throws std::runtime_error naming the file.
void WritePngAtomic(const std::string& path, const cv::Mat& image);

}  // namespace l2m
