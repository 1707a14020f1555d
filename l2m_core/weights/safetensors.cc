#include "l2m_core/weights/safetensors.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_set>

namespace l2m {
namespace {

// Headers of real models are a few tens of KiB; anything huge is corrupt.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
constexpr size_t kMaxDims = 64;

struct CodeEntry {
  const char* code;
  at::ScalarType dtype;
};

constexpr CodeEntry kCodes[] = {
    {"F64", at::kDouble},
    {"F32", at::kFloat},
    {"F16", at::kHalf},
    {"BF16", at::kBFloat16},
    {"I64", at::kLong},
    {"I32", at::kInt},
    {"I16", at::kShort},
    {"I8", at::kChar},
    {"U8", at::kByte},
    {"BOOL", at::kBool},
};

[[noreturn]] void Fail(const std::string& source, const std::string& what) {
  throw std::runtime_error("Cannot read safetensors '" + source + "': " + what);
}

uint64_t ReadU64LE(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Parses and validates the JSON header against a data section of
// `data_size` bytes.
SafetensorsHeader ParseHeader(const char* json_text,
                              size_t json_size,
                              uint64_t data_size,
                              const std::string& source) {
  using Json = nlohmann::ordered_json;
  Json root;
  try {
    root = Json::parse(json_text, json_text + json_size);
  } catch (const Json::exception& e) {
    Fail(source, std::string("corrupt JSON header (") + e.what() + ")");
  }
  if (!root.is_object()) Fail(source, "JSON header is not an object");
  SafetensorsHeader header;
  std::unordered_set<std::string> names;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const Json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) Fail(source, "__metadata__ is not an object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          Fail(source,
               "__metadata__ value of '" + m.key() + "' is not a string");
        }
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name.substr(0, 200) + "': ";
    if (name.empty()) Fail(source, "empty tensor name");
    if (!names.insert(name).second) Fail(source, where + "duplicate name");
    if (!value.is_object()) Fail(source, where + "entry is not an object");
    const auto dtype = value.find("dtype");
    const auto shape = value.find("shape");
    const auto offsets = value.find("data_offsets");
    if (dtype == value.end() || !dtype->is_string() || shape == value.end() ||
        !shape->is_array() || offsets == value.end() || !offsets->is_array() ||
        offsets->size() != 2) {
      Fail(source, where + "needs dtype, shape and data_offsets");
    }
    SafetensorsEntry e;
    e.name = name;
    try {
      e.dtype = DtypeFromSafetensors(dtype->get<std::string>());
    } catch (const std::runtime_error& err) {
      Fail(source, where + err.what());
    }
    if (shape->size() > kMaxDims) Fail(source, where + "too many dimensions");
    uint64_t numel = 1;
    for (const Json& d : *shape) {
      if (!d.is_number_unsigned()) {
        Fail(source, where + "shape must hold non-negative integers");
      }
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(INT64_MAX) ||
          __builtin_mul_overflow(numel, v, &numel)) {
        Fail(source, where + "shape overflows");
      }
      e.shape.push_back(static_cast<int64_t>(v));
    }
    for (const Json& o : *offsets) {
      if (!o.is_number_unsigned()) {
        Fail(source, where + "data_offsets must be non-negative integers");
      }
    }
    e.begin = (*offsets)[0].get<uint64_t>();
    e.end = (*offsets)[1].get<uint64_t>();
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, c10::elementSize(e.dtype), &nbytes) ||
        nbytes > static_cast<uint64_t>(INT64_MAX)) {
      Fail(source, where + "size overflows");
    }
    if (e.begin > e.end || e.end > data_size) {
      Fail(source,
           where + "data_offsets [" + std::to_string(e.begin) + ", " +
               std::to_string(e.end) + ") outside the " +
               std::to_string(data_size) +
               "-byte data section (truncated file?)");
    }
    if (e.end - e.begin != nbytes) {
      Fail(source,
           where + "data_offsets span " + std::to_string(e.end - e.begin) +
               " bytes, dtype and " + "shape need " + std::to_string(nbytes));
    }
    header.entries.push_back(std::move(e));
  }
  std::stable_sort(header.entries.begin(),
                   header.entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin < b.begin;
                   });
  for (size_t i = 1; i < header.entries.size(); ++i) {
    if (header.entries[i].begin < header.entries[i - 1].end) {
      Fail(source,
           "tensors '" + header.entries[i - 1].name + "' and '" +
               header.entries[i].name + "' overlap");
    }
  }
  return header;
}

// Parses the 8-byte length and the header from the first bytes of a file.
uint64_t HeaderLength(const uint8_t* head8,
                      uint64_t file_size,
                      const std::string& source) {
  if (file_size < 8) Fail(source, "truncated: shorter than 8 bytes");
  const uint64_t n = ReadU64LE(head8);
  if (n > kMaxHeaderBytes) {
    Fail(source, "header length " + std::to_string(n) + " is implausible");
  }
  if (n > file_size - 8) {
    Fail(source,
         "truncated: header of " + std::to_string(n) +
             " bytes runs past the end of the file");
  }
  return n;
}

std::vector<int64_t> ShapeOf(const at::Tensor& t) {
  return std::vector<int64_t>(t.sizes().begin(), t.sizes().end());
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

bool PreadAll(int fd, void* buf, size_t n, uint64_t pos) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd,
                              static_cast<char*>(buf) + done,
                              n - done,
                              static_cast<off_t>(pos + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const void* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r =
        ::write(fd, static_cast<const char*>(buf) + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

SafetensorsHeader ReadHeaderFromFd(int fd,
                                   uint64_t file_size,
                                   const std::string& source) {
  uint8_t head[8] = {0};
  if (file_size >= 8 && !PreadAll(fd, head, 8, 0)) Fail(source, "read error");
  const uint64_t n = HeaderLength(head, file_size, source);
  std::string json(static_cast<size_t>(n), '\0');
  if (!PreadAll(fd, json.data(), json.size(), 8)) Fail(source, "read error");
  SafetensorsHeader header =
      ParseHeader(json.data(), json.size(), file_size - 8 - n, source);
  header.data_offset = 8 + n;
  header.file_size = file_size;
  return header;
}

StateDict NewStateDict(const SafetensorsHeader& header,
                       const std::string& source) {
  StateDict sd;
  sd.source = source;
  sd.format = "safetensors";
  sd.metadata = header.metadata;
  sd.tensors.reserve(header.entries.size());
  return sd;
}

}  // namespace

std::string SafetensorsDtype(at::ScalarType dtype) {
  for (const auto& c : kCodes) {
    if (c.dtype == dtype) return c.code;
  }
  throw std::runtime_error("dtype " + DtypeName(dtype) +
                           " cannot be stored in safetensors");
}

at::ScalarType DtypeFromSafetensors(const std::string& code) {
  for (const auto& c : kCodes) {
    if (code == c.code) return c.dtype;
  }
  throw std::runtime_error("unsupported safetensors dtype '" +
                           code.substr(0, 32) + "'");
}

bool LooksLikeSafetensors(const void* head,
                          size_t head_size,
                          uint64_t file_size) {
  if (head_size < 9 || file_size < 10) return false;
  const auto* p = static_cast<const uint8_t*>(head);
  const uint64_t n = ReadU64LE(p);
  return n >= 2 && n <= kMaxHeaderBytes && n <= file_size - 8 && p[8] == '{';
}

SafetensorsHeader ReadSafetensorsHeader(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) Fail(path, std::string("cannot open: ") + strerror(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    Fail(path, "not a regular file");
  }
  return ReadHeaderFromFd(fd.get(), static_cast<uint64_t>(st.st_size), path);
}

StateDict ReadSafetensors(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) Fail(path, std::string("cannot open: ") + strerror(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    Fail(path, "not a regular file");
  }
  const SafetensorsHeader header =
      ReadHeaderFromFd(fd.get(), static_cast<uint64_t>(st.st_size), path);
  StateDict sd = NewStateDict(header, path);
  for (const SafetensorsEntry& e : header.entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    const size_t nbytes = static_cast<size_t>(e.end - e.begin);
    if (nbytes > 0 &&
        !PreadAll(
            fd.get(), t.data_ptr(), nbytes, header.data_offset + e.begin)) {
      Fail(path, "truncated or unreadable data of tensor '" + e.name + "'");
    }
    sd.tensors.emplace_back(e.name, std::move(t));
  }
  return sd;
}

StateDict ReadSafetensorsFromMemory(const std::string& bytes,
                                    const std::string& source_name) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint64_t n = HeaderLength(p, bytes.size(), source_name);
  SafetensorsHeader header =
      ParseHeader(bytes.data() + 8, n, bytes.size() - 8 - n, source_name);
  header.data_offset = 8 + n;
  header.file_size = bytes.size();
  StateDict sd = NewStateDict(header, source_name);
  for (const SafetensorsEntry& e : header.entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    const size_t nbytes = static_cast<size_t>(e.end - e.begin);
    if (nbytes > 0) {
      std::memcpy(t.data_ptr(), p + header.data_offset + e.begin, nbytes);
    }
    sd.tensors.emplace_back(e.name, std::move(t));
  }
  return sd;
}

void WriteSafetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  const std::string prefix = "Cannot write safetensors '" + path + "': ";
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__") {
      throw std::runtime_error(prefix + "invalid tensor name '" + name + "'");
    }
    if (!names.insert(name).second) {
      throw std::runtime_error(prefix + "duplicate tensor name '" + name + "'");
    }
    if (!tensor.defined()) {
      throw std::runtime_error(prefix + "tensor '" + name + "' is undefined");
    }
    at::Tensor t = tensor.to(at::kCPU).contiguous();
    std::string code;
    try {
      code = SafetensorsDtype(t.scalar_type());
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(prefix + "tensor '" + name + "': " + e.what());
    }
    const uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", code},
                    {"shape", ShapeOf(t)},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(std::move(t));
  }
  std::string json = header.dump();
  // Pad so the data section starts 8-byte aligned (as the Python package does).
  while ((8 + json.size()) % 8 != 0) json.push_back(' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) {
    len[i] =
        static_cast<uint8_t>(static_cast<uint64_t>(json.size()) >> (8 * i));
  }

  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(counter++);
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    throw std::runtime_error(prefix + "cannot create '" + tmp +
                             "': " + strerror(errno));
  }
  const auto fail = [&](const std::string& what) {
    const std::string err = strerror(errno);
    ::close(fd.release());
    ::unlink(tmp.c_str());
    throw std::runtime_error(prefix + what + ": " + err);
  };
  if (!WriteAll(fd.get(), len, 8) ||
      !WriteAll(fd.get(), json.data(), json.size())) {
    fail("write failed");
  }
  for (const at::Tensor& t : data) {
    if (t.nbytes() > 0 && !WriteAll(fd.get(), t.data_ptr(), t.nbytes())) {
      fail("write failed");
    }
  }
  if (::fsync(fd.get()) != 0) fail("fsync failed");
  if (::close(fd.release()) != 0) {
    const std::string err = strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error(prefix + "close failed: " + err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error(prefix + "rename failed: " + err);
  }
}

}  // namespace l2m
