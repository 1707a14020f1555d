#include "matcher_adapters/image_io.h"

#include "l2m_core/util/file.h"

#include <opencv2/imgcodecs.hpp>

#include <array>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <sys/stat.h>

namespace l2m {
namespace {

constexpr size_t kHeaderSize = 32;

// Reads the first bytes of the file; throws naming the file when it is
// missing or cannot be opened.
std::string ReadHeader(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw std::runtime_error("Image file not found: " + path);
  }
  if (S_ISDIR(st.st_mode)) {
    throw std::runtime_error("Image path is a directory: " + path);
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw std::runtime_error("Cannot open image file for reading: " + path);
  }
  std::string header(kHeaderSize, '\0');
  file.read(&header[0], header.size());
  header.resize(static_cast<size_t>(file.gcount()));
  if (header.empty()) {
    throw std::runtime_error("Image file is empty: " + path);
  }
  return header;
}

bool HasPrefix(const std::string& data, const char* prefix, size_t n) {
  return data.size() >= n && std::memcmp(data.data(), prefix, n) == 0;
}

// Formats that OpenCV always decodes to 8 bits per channel.
bool IsAlways8Bit(const std::string& header) {
  return HasPrefix(header, "\xFF\xD8\xFF", 3) ||  // JPEG
         HasPrefix(header, "BM", 2) ||            // BMP
         HasPrefix(header, "GIF8", 4) ||          // GIF
         (HasPrefix(header, "RIFF", 4) && header.size() >= 12 &&
          header.compare(8, 4, "WEBP") == 0);
}

// libjpeg decodes a truncated JPEG "successfully" (only a warning, the
// missing rows filled in grey), so walk the marker structure, skipping the
// entropy-coded scans, and require the end-of-image marker. Segments are
// skipped by their lengths, so an EXIF thumbnail's own markers are not seen.
bool JpegHasEndOfImage(const std::string& data) {
  const auto byte = [&data](size_t i) {
    return static_cast<unsigned char>(data[i]);
  };
  size_t p = 2;  // After SOI.
  while (p + 2 <= data.size()) {
    if (byte(p) != 0xFF) return false;
    const unsigned char marker = byte(p + 1);
    if (marker == 0xFF) {  // Fill byte.
      ++p;
      continue;
    }
    if (marker == 0xD9) return true;  // EOI.
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      p += 2;  // Markers without a length.
      continue;
    }
    if (p + 4 > data.size()) return false;
    const size_t length = (static_cast<size_t>(byte(p + 2)) << 8) | byte(p + 3);
    if (length < 2) return false;
    p += 2 + length;
    if (marker != 0xDA) continue;
    // Start of scan: entropy-coded data up to the next real marker (FF00 is a
    // stuffed byte, FFD0-FFD7 restart markers, FFFF fill).
    while (p + 1 < data.size()) {
      if (byte(p) != 0xFF) {
        ++p;
        continue;
      }
      const unsigned char next = byte(p + 1);
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        p += 2;
      } else if (next == 0xFF) {
        ++p;
      } else {
        break;
      }
    }
    if (p + 1 >= data.size()) return false;
  }
  return false;
}

bool IsJpeg(const std::string& header) {
  return HasPrefix(header, "\xFF\xD8\xFF", 3);
}

int DepthBits(int depth) {
  switch (depth) {
    case CV_8U:
    case CV_8S:
      return 8;
    case CV_16U:
    case CV_16S:
    case CV_16F:
      return 16;
    case CV_32S:
    case CV_32F:
      return 32;
    default:
      return 64;
  }
}

void ThrowUnsupportedDepth(const std::string& path, int bits) {
  throw std::runtime_error("Image " + path + ": unsupported bit depth " +
                           std::to_string(bits) +
                           " (only 8-bit images are supported)");
}

}  // namespace

int ImageBitDepth(const std::string& path) {
  const std::string header = ReadHeader(path);
  // PNG: 8-byte signature, IHDR chunk (length, "IHDR", width, height), then
  // the bit depth byte at offset 24. 1, 2 and 4 bits decode to 8.
  if (HasPrefix(header, "\x89PNG\r\n\x1a\n", 8) && header.size() > 24 &&
      header.compare(12, 4, "IHDR") == 0) {
    const int bits = static_cast<unsigned char>(header[24]);
    return bits <= 8 ? 8 : bits;
  }
  if (IsAlways8Bit(header)) return 8;
  // Anything else: decode without conversion and look.
  const cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
  if (image.empty()) {
    throw std::runtime_error(
        "Cannot decode image (corrupt or unsupported "
        "format): " +
        path);
  }
  return DepthBits(image.depth());
}

bool IsSupportedImageDepth(const std::string& path, std::string* reason) {
  const int bits = ImageBitDepth(path);
  if (bits == 8) return true;
  if (reason != nullptr) {
    *reason = "unsupported bit depth " + std::to_string(bits);
  }
  return false;
}

MatcherImage LoadMatcherImage(int64_t image_id, const std::string& path) {
  const int bits = ImageBitDepth(path);
  if (bits != 8) ThrowUnsupportedDepth(path, bits);
  if (IsJpeg(ReadHeader(path)) && !JpegHasEndOfImage(ReadBinaryFile(path))) {
    throw std::runtime_error(
        "Image file is truncated or corrupt (JPEG "
        "without an end-of-image marker): " +
        path);
  }
  MatcherImage image;
  image.image_id = image_id;
  image.path = path;
  // COLMAP reads the stored pixel grid without applying EXIF orientation;
  // keypoints must live in that same grid.
  image.bgr =
      cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  if (image.bgr.empty()) {
    throw std::runtime_error(
        "Cannot decode image (corrupt or unsupported "
        "format): " +
        path);
  }
  return image;
}

void WritePngAtomic(const std::string& path, const cv::Mat& image) {
  std::vector<uchar> bytes;
  if (image.empty() || !cv::imencode(".png", image, bytes)) {
    throw std::runtime_error("cannot encode a PNG for '" + path + "'");
  }
  WriteFileAtomic(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace l2m
