#include "synth/npy.h"

#include "datasets/npy.h"
#include "datasets/npz.h"
#include "l2m_core/util/file.h"

#include <cstring>
#include <stdexcept>

// cv::Mat views of the project's one .npy/.npz implementation
// (datasets/npy.h, datasets/npz.h).

namespace l2m {
namespace {

// OpenCV depth <-> NumPy (kind, item size).
void NpyType(int depth, char* kind, int* item_size) {
  switch (depth) {
    case CV_8U:
      *kind = 'u';
      *item_size = 1;
      return;
    case CV_8S:
      *kind = 'i';
      *item_size = 1;
      return;
    case CV_16U:
      *kind = 'u';
      *item_size = 2;
      return;
    case CV_16S:
      *kind = 'i';
      *item_size = 2;
      return;
    case CV_32S:
      *kind = 'i';
      *item_size = 4;
      return;
    case CV_32F:
      *kind = 'f';
      *item_size = 4;
      return;
    case CV_64F:
      *kind = 'f';
      *item_size = 8;
      return;
  }
  throw std::invalid_argument("EncodeNpy: unsupported Mat depth");
}

int CvDepth(const NpyArray& a, const std::string& what) {
  const char k = a.kind == 'b' ? 'u' : a.kind;
  const int s = a.item_size;
  if (k == 'u' && s == 1) return CV_8U;
  if (k == 'i' && s == 1) return CV_8S;
  if (k == 'u' && s == 2) return CV_16U;
  if (k == 'i' && s == 2) return CV_16S;
  if (k == 'i' && s == 4) return CV_32S;
  if (k == 'f' && s == 4) return CV_32F;
  if (k == 'f' && s == 8) return CV_64F;
  throw std::runtime_error(
      "'" + what + "' is not a readable .npy file: unsupported dtype '" +
      std::string(1, a.kind) + std::to_string(a.item_size) + "'");
}

cv::Mat ToMat(const NpyArray& a, const std::string& what) {
  const int depth = CvDepth(a, what);
  int rows = 1, cols = 1, channels = 1;
  const auto& sh = a.shape;
  if (sh.size() == 1) {
    cols = static_cast<int>(sh[0]);
  } else if (sh.size() == 2) {
    rows = static_cast<int>(sh[0]);
    cols = static_cast<int>(sh[1]);
  } else if (sh.size() == 3 && sh[2] >= 1 && sh[2] <= 4) {
    rows = static_cast<int>(sh[0]);
    cols = static_cast<int>(sh[1]);
    channels = static_cast<int>(sh[2]);
  } else if (sh.size() != 0) {
    throw std::runtime_error(
        "'" + what + "' is not a readable .npy file: shape of " +
        std::to_string(sh.size()) + " dimensions is not an image");
  }
  cv::Mat m(rows, cols, CV_MAKETYPE(depth, channels));
  const size_t bytes = m.total() * m.elemSize();
  if (a.data.size() != bytes) {
    throw std::runtime_error(
        "'" + what +
        "' is not a readable .npy file: data size disagrees with the shape");
  }
  if (bytes > 0) std::memcpy(m.data, a.data.data(), bytes);
  return m;
}

}  // namespace

std::string EncodeNpy(const cv::Mat& array_in) {
  const cv::Mat array = array_in.isContinuous() ? array_in : array_in.clone();
  NpyArray a;
  NpyType(array.depth(), &a.kind, &a.item_size);
  a.shape = {array.rows, array.cols};
  if (array.channels() > 1) a.shape.push_back(array.channels());
  a.data.assign(reinterpret_cast<const char*>(array.data),
                array.total() * array.elemSize());
  return EncodeNpyArray(a);
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
  return ToMat(ParseNpy(bytes, what), what);
}

cv::Mat ReadNpy(const std::string& path) {
  return DecodeNpy(ReadBinaryFile(path), path);
}

cv::Mat ReadNpz(const std::string& path, const std::string& name) {
  const std::map<std::string, NpyArray> arrays = ReadNpzArchive(path);
  if (arrays.empty())
    throw std::runtime_error("'" + path + "' holds no arrays");
  if (name.empty()) return ToMat(arrays.begin()->second, path);
  return ToMat(NpzArray(arrays, name, path), path);
}

}  // namespace l2m
