#include "synth/npy.h"

#include "l2m_core/util/file.h"

#include <cstring>
#include <sstream>
#include <stdexcept>
#include <zlib.h>

namespace l2m {
namespace {

std::string NpyDescr(int depth) {
  switch (depth) {
    case CV_8U:
      return "|u1";
    case CV_8S:
      return "|i1";
    case CV_16U:
      return "<u2";
    case CV_16S:
      return "<i2";
    case CV_32S:
      return "<i4";
    case CV_32F:
      return "<f4";
    case CV_64F:
      return "<f8";
  }
  throw std::invalid_argument("EncodeNpy: unsupported Mat depth");
}

uint32_t ReadU32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
uint16_t ReadU16(const std::string& s, size_t at) {
  uint16_t v;
  std::memcpy(&v, s.data() + at, 2);
  return v;
}

}  // namespace

std::string EncodeNpy(const cv::Mat& array_in) {
  const cv::Mat array = array_in.isContinuous() ? array_in : array_in.clone();
  std::ostringstream dict;
  dict << "{'descr': '" << NpyDescr(array.depth())
       << "', 'fortran_order': False, 'shape': (" << array.rows << ", "
       << array.cols;
  if (array.channels() > 1) dict << ", " << array.channels();
  dict << "), }";
  std::string header = dict.str();
  // Version 1.0: magic(6) + version(2) + len(2) + header, padded with spaces
  // and ending in '\n' so the data starts 64-byte aligned.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.append(reinterpret_cast<const char*>(&len), 2);
  out += header;
  out.append(reinterpret_cast<const char*>(array.data),
             array.total() * array.elemSize());
  return out;
}

void WriteNpy(const std::string& path, const cv::Mat& array) {
  WriteFileAtomic(path, EncodeNpy(array));
}

void WriteNpy(const std::string& path, const Eigen::MatrixXd& matrix) {
  cv::Mat m(
      static_cast<int>(matrix.rows()), static_cast<int>(matrix.cols()), CV_32F);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c)
      m.at<float>(r, c) = static_cast<float>(matrix(r, c));
  WriteNpy(path, m);
}

cv::Mat DecodeNpy(const std::string& bytes, const std::string& what) {
  auto fail = [&](const std::string& msg) {
    return std::runtime_error("'" + what +
                              "' is not a readable .npy file: " + msg);
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw fail("missing the \\x93NUMPY magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = ReadU16(bytes, 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("truncated header");
    header_len = ReadU32(bytes, 8);
    offset = 12;
  } else {
    throw fail("unknown format version " + std::to_string(major));
  }
  if (offset + header_len > bytes.size()) throw fail("truncated header");
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  auto field = [&](const std::string& key) {
    const size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) throw fail("header lacks '" + key + "'");
    return header.substr(header.find(':', k) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  if (field("fortran_order").find("True") <
      field("fortran_order").find("False"))
    throw fail("Fortran-order arrays are not supported");
  std::string shape_text = field("shape");
  shape_text = shape_text.substr(shape_text.find('(') + 1);
  shape_text = shape_text.substr(0, shape_text.find(')'));
  std::vector<int64_t> shape;
  std::stringstream ss(shape_text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    shape.push_back(std::stoll(item));
  }

  int depth;
  if (descr == "<f4")
    depth = CV_32F;
  else if (descr == "<f8")
    depth = CV_64F;
  else if (descr == "|u1" || descr == "<u1" || descr == "|b1")
    depth = CV_8U;
  else if (descr == "|i1")
    depth = CV_8S;
  else if (descr == "<u2")
    depth = CV_16U;
  else if (descr == "<i2")
    depth = CV_16S;
  else if (descr == "<i4")
    depth = CV_32S;
  else
    throw fail("unsupported dtype '" + descr + "'");

  int rows = 1, cols = 1, channels = 1;
  if (shape.size() == 1) {
    cols = static_cast<int>(shape[0]);
  } else if (shape.size() == 2) {
    rows = static_cast<int>(shape[0]);
    cols = static_cast<int>(shape[1]);
  } else if (shape.size() == 3 && shape[2] >= 1 && shape[2] <= 4) {
    rows = static_cast<int>(shape[0]);
    cols = static_cast<int>(shape[1]);
    channels = static_cast<int>(shape[2]);
  } else if (shape.size() == 3 && shape[0] == 1) {
    rows = static_cast<int>(shape[1]);
    cols = static_cast<int>(shape[2]);
  } else {
    throw fail("unsupported shape (" + shape_text + ")");
  }
  cv::Mat out(rows, cols, CV_MAKETYPE(depth, channels));
  const size_t size = out.total() * out.elemSize();
  if (bytes.size() - offset < size)
    throw fail("data is shorter than the shape (" + shape_text + ") needs");
  std::memcpy(out.data, bytes.data() + offset, size);
  return out;
}

cv::Mat ReadNpy(const std::string& path) {
  return DecodeNpy(ReadBinaryFile(path), path);
}

cv::Mat ReadNpz(const std::string& path, const std::string& name) {
  const std::string zip = ReadBinaryFile(path);
  auto fail = [&](const std::string& msg) {
    return std::runtime_error("'" + path +
                              "' is not a readable .npz file: " + msg);
  };
  // End of central directory: the last 0x06054b50 signature.
  if (zip.size() < 22) throw fail("too short");
  size_t eocd = std::string::npos;
  for (size_t i = zip.size() - 22 + 1; i-- > 0;) {
    if (ReadU32(zip, i) == 0x06054b50u) {
      eocd = i;
      break;
    }
    if (zip.size() - i > 65536 + 22) break;
  }
  if (eocd == std::string::npos) throw fail("no zip directory");
  const int entries = ReadU16(zip, eocd + 10);
  size_t at = ReadU32(zip, eocd + 16);
  std::vector<std::string> names;
  for (int e = 0; e < entries; ++e) {
    if (at + 46 > zip.size() || ReadU32(zip, at) != 0x02014b50u)
      throw fail("corrupt zip directory");
    const int method = ReadU16(zip, at + 10);
    const uint32_t comp_size = ReadU32(zip, at + 20);
    const uint32_t size = ReadU32(zip, at + 24);
    const int name_len = ReadU16(zip, at + 28);
    const int extra_len = ReadU16(zip, at + 30);
    const int comment_len = ReadU16(zip, at + 32);
    const uint32_t local = ReadU32(zip, at + 42);
    std::string entry = zip.substr(at + 46, name_len);
    at += 46 + name_len + extra_len + comment_len;
    names.push_back(entry);
    if (entry.size() > 4 && entry.compare(entry.size() - 4, 4, ".npy") == 0)
      entry.resize(entry.size() - 4);
    if (!name.empty() && entry != name) continue;
    if (comp_size == 0xffffffffu || size == 0xffffffffu)
      throw fail("zip64 entries are not supported");
    if (local + 30 > zip.size() || ReadU32(zip, local) != 0x04034b50u)
      throw fail("corrupt local header of '" + entry + "'");
    const size_t data =
        local + 30 + ReadU16(zip, local + 26) + ReadU16(zip, local + 28);
    if (data + comp_size > zip.size()) throw fail("truncated entry");
    std::string raw;
    if (method == 0) {
      raw = zip.substr(data, comp_size);
    } else if (method == 8) {
      raw.resize(size);
      z_stream stream{};
      if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) throw fail("zlib init");
      stream.next_in =
          reinterpret_cast<Bytef*>(const_cast<char*>(zip.data() + data));
      stream.avail_in = comp_size;
      stream.next_out = reinterpret_cast<Bytef*>(raw.data());
      stream.avail_out = size;
      const int rc = inflate(&stream, Z_FINISH);
      inflateEnd(&stream);
      if (rc != Z_STREAM_END) throw fail("corrupt deflate data");
    } else {
      throw fail("unsupported compression method " + std::to_string(method));
    }
    return DecodeNpy(raw, path + ":" + entry);
  }
  throw fail("no array named '" + name + "' (has " +
             std::to_string(names.size()) + " entries)");
}

}  // namespace l2m
