#include "synth/shard.h"

#include "l2m_core/util/file.h"

#include <opencv2/imgcodecs.hpp>

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace l2m {
namespace {

const char kMagic[] = "L2MSHRD1";
const char kFooterMagic[] = "L2MSIDX1";

std::string DtypeName(int depth) {
  switch (depth) {
    case CV_8U:
      return "uint8";
    case CV_16U:
      return "uint16";
    case CV_32S:
      return "int32";
    case CV_32F:
      return "float32";
    case CV_64F:
      return "float64";
  }
  throw std::invalid_argument("shard: unsupported tensor depth");
}

int DtypeDepth(const std::string& name) {
  if (name == "uint8") return CV_8U;
  if (name == "uint16") return CV_16U;
  if (name == "int32") return CV_32S;
  if (name == "float32") return CV_32F;
  if (name == "float64") return CV_64F;
  return -1;
}

}  // namespace

void WriteShard(const std::string& path,
                const std::vector<ShardRecord>& records) {
  std::string data(kMagic, 8);
  nlohmann::json index = {{"version", 1}, {"records", nlohmann::json::array()}};
  for (const auto& record : records) {
    nlohmann::json entry = {{"name", record.name}, {"meta", record.meta}};
    nlohmann::json tensors = nlohmann::json::object();
    for (const auto& [key, tensor] : record.tensors) {
      const cv::Mat m =
          tensor.value.isContinuous() ? tensor.value : tensor.value.clone();
      std::string bytes;
      if (tensor.png) {
        std::vector<uint8_t> buffer;
        if (!cv::imencode(".png", m, buffer, {cv::IMWRITE_PNG_COMPRESSION, 1}))
          throw std::runtime_error("Cannot PNG-encode '" + key + "' for " +
                                   path);
        bytes.assign(buffer.begin(), buffer.end());
      } else {
        bytes.assign(reinterpret_cast<const char*>(m.data),
                     m.total() * m.elemSize());
      }
      nlohmann::json shape = {m.rows, m.cols};
      if (m.channels() > 1) shape.push_back(m.channels());
      tensors[key] = {{"offset", data.size()},
                      {"nbytes", bytes.size()},
                      {"encoding", tensor.png ? "png" : "raw"},
                      {"dtype", DtypeName(m.depth())},
                      {"shape", shape}};
      data += bytes;
    }
    entry["tensors"] = tensors;
    index["records"].push_back(entry);
  }
  const std::string index_text = index.dump();
  const uint64_t index_offset = data.size(), index_size = index_text.size();
  data += index_text;
  data.append(reinterpret_cast<const char*>(&index_offset), 8);
  data.append(reinterpret_cast<const char*>(&index_size), 8);
  data.append(kFooterMagic, 8);
  WriteFileAtomic(path, data);
}

ShardReader::ShardReader(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("Cannot open shard '" + path + "'");
  const int64_t size = in.tellg();
  auto fail = [&](const std::string& msg) {
    return std::runtime_error("'" + path + "' is not an l2m shard: " + msg);
  };
  if (size < 32) throw fail("too short");
  char footer[24];
  in.seekg(size - 24);
  in.read(footer, 24);
  char head[8];
  in.seekg(0);
  in.read(head, 8);
  if (std::memcmp(head, kMagic, 8) != 0 ||
      std::memcmp(footer + 16, kFooterMagic, 8) != 0)
    throw fail("bad magic (truncated or another format)");
  uint64_t offset, length;
  std::memcpy(&offset, footer, 8);
  std::memcpy(&length, footer + 8, 8);
  if (offset + length + 24 != static_cast<uint64_t>(size))
    throw fail("bad index location");
  std::string text(length, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(text.data(), static_cast<std::streamsize>(length));
  try {
    index_ = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw fail(std::string("corrupt index: ") + e.what());
  }
}

cv::Mat ShardReader::ReadTensor(int i, const std::string& key) const {
  const auto& tensors = Record(i)["tensors"];
  if (!tensors.contains(key))
    throw std::runtime_error("Shard '" + path_ + "' record " +
                             std::to_string(i) + " has no tensor '" + key +
                             "'");
  const auto& t = tensors[key];
  std::ifstream in(path_, std::ios::binary);
  std::string bytes(t["nbytes"].get<size_t>(), '\0');
  in.seekg(t["offset"].get<int64_t>());
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw std::runtime_error("Shard '" + path_ + "' is truncated");
  if (t["encoding"] == "png") {
    cv::Mat m = cv::imdecode(
        cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, bytes.data()),
        cv::IMREAD_UNCHANGED);
    if (m.empty())
      throw std::runtime_error("Shard '" + path_ + "': corrupt PNG '" + key +
                               "'");
    return m;
  }
  const auto shape = t["shape"].get<std::vector<int>>();
  const int channels = shape.size() > 2 ? shape[2] : 1;
  cv::Mat m(shape[0], shape[1], CV_MAKETYPE(DtypeDepth(t["dtype"]), channels));
  if (m.total() * m.elemSize() != bytes.size())
    throw std::runtime_error("Shard '" + path_ + "': size mismatch for '" +
                             key + "'");
  std::memcpy(m.data, bytes.data(), bytes.size());
  return m;
}

}  // namespace l2m
