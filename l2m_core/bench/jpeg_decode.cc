#include "l2m_core/bench/jpeg_decode.h"

#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

#ifdef L2M_HAVE_LIBJPEG
#include <jpeglib.h>
#endif

namespace l2m {

#ifdef L2M_HAVE_LIBJPEG
namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnError(j_common_ptr info) {
  auto* err = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, err->message);
  std::longjmp(err->jump, 1);
}

}  // namespace

RgbImage DecodeJpegFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read image '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  jpeg_decompress_struct info;
  ErrorManager err;
  info.err = jpeg_std_error(&err.base);
  err.base.error_exit = OnError;
  RgbImage image;
  // No C++ objects with destructors are created between setjmp and the
  // decode calls that may longjmp.
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&info);
    throw std::runtime_error("'" + path +
                             "' is not a valid JPEG: " + err.message);
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info,
               reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  info.out_color_space = JCS_RGB;
  jpeg_start_decompress(&info);
  image.height = static_cast<int>(info.output_height);
  image.width = static_cast<int>(info.output_width);
  image.pixels.resize(static_cast<size_t>(image.height) * image.width * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image.pixels.data() +
                   static_cast<size_t>(info.output_scanline) * image.width * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return image;
}

#else

RgbImage DecodeJpegFile(const std::string& path) {
  throw std::runtime_error("cannot decode '" + path +
                           "': l2m was built without libjpeg");
}

#endif

}  // namespace l2m
