#include "l2m_core/weights/checkpoint.h"

#include "l2m_core/weights/safetensors.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <new>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>

namespace l2m {
namespace {

constexpr int kMaxDims = 64;
constexpr int kMaxRebuildDepth = 8;

struct NamedDtype {
  const char* name;
  at::ScalarType dtype;
};

// `torch.<X>Storage` classes that appear in persistent ids (also under
// torch.cuda for legacy GPU checkpoints); UntypedStorage is bytes.
constexpr NamedDtype kStorageTypes[] = {
    {"FloatStorage", at::kFloat},
    {"DoubleStorage", at::kDouble},
    {"HalfStorage", at::kHalf},
    {"BFloat16Storage", at::kBFloat16},
    {"LongStorage", at::kLong},
    {"IntStorage", at::kInt},
    {"ShortStorage", at::kShort},
    {"CharStorage", at::kChar},
    {"ByteStorage", at::kByte},
    {"BoolStorage", at::kBool},
    {"ComplexFloatStorage", at::kComplexFloat},
    {"ComplexDoubleStorage", at::kComplexDouble},
    {"UntypedStorage", at::kByte},
};

// `torch.<dtype>` globals (argument of _rebuild_tensor_v3).
constexpr NamedDtype kTorchDtypes[] = {
    {"float32", at::kFloat},
    {"float", at::kFloat},
    {"float64", at::kDouble},
    {"double", at::kDouble},
    {"float16", at::kHalf},
    {"half", at::kHalf},
    {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},
    {"long", at::kLong},
    {"int32", at::kInt},
    {"int", at::kInt},
    {"int16", at::kShort},
    {"short", at::kShort},
    {"int8", at::kChar},
    {"uint8", at::kByte},
    {"bool", at::kBool},
    {"complex64", at::kComplexFloat},
    {"complex128", at::kComplexDouble},
};

[[noreturn]] void Corrupt(const std::string& what) {
  throw std::runtime_error("corrupt checkpoint: " + what);
}

// Parsed ('storage', <type>, key, location, numel[, view]) persistent id.
struct StoragePid {
  std::string key;
  at::ScalarType dtype = at::kFloat;
  int64_t numel = 0;
  bool has_view = false;  // Legacy storage views (offset/size in elements).
  std::string view_key;
  int64_t view_offset = 0;
  int64_t view_size = 0;
};

std::string KeyText(const PickleTree& tree, PickleId id, const char* what) {
  const PickleNode& n = tree.node(id);
  if (n.kind == PickleKind::kString || n.kind == PickleKind::kBytes) {
    if (n.text.size() > 4096) Corrupt(std::string(what) + " is too long");
    return n.text;
  }
  if (n.kind == PickleKind::kInt) return std::to_string(n.int_value);
  Corrupt(std::string(what) + " is a " + tree.Describe(id) +
          ", expected a string");
}

int64_t IntValue(const PickleTree& tree, PickleId id, const char* what) {
  const PickleNode& n = tree.node(id);
  if (n.kind == PickleKind::kInt) return n.int_value;
  if (n.kind == PickleKind::kBool) return n.bool_value ? 1 : 0;
  Corrupt(std::string(what) + " is " + tree.Describe(id) + ", expected an int");
}

StoragePid ParseStoragePid(const PickleTree& tree, PickleId persid) {
  const PickleNode& p = tree.node(persid);
  if (p.kind != PickleKind::kPersistentId) {
    Corrupt("tensor storage is " + tree.Describe(persid) +
            ", expected a persistent id");
  }
  const PickleNode& t = tree.node(p.args);
  if (t.kind != PickleKind::kTuple || t.items.size() < 5 ||
      t.items.size() > 6) {
    Corrupt("persistent id is " + tree.Describe(p.args) +
            ", expected ('storage', type, key, location, numel)");
  }
  if (KeyText(tree, t.items[0], "persistent id tag") != "storage") {
    Corrupt("unknown persistent id tag '" +
            KeyText(tree, t.items[0], "persistent id tag") + "'");
  }
  StoragePid pid;
  const PickleNode& type = tree.node(t.items[1]);
  bool known = false;
  if (type.kind == PickleKind::kGlobal &&
      (type.text == "torch" || type.text == "torch.cuda")) {
    for (const auto& e : kStorageTypes) {
      if (type.name == e.name) {
        pid.dtype = e.dtype;
        known = true;
      }
    }
  }
  if (!known) {
    Corrupt("unsupported storage type " + tree.Describe(t.items[1]));
  }
  pid.key = KeyText(tree, t.items[2], "storage key");
  KeyText(tree, t.items[3], "storage location");
  pid.numel = IntValue(tree, t.items[4], "storage size");
  if (pid.numel < 0) Corrupt("negative storage size");
  if (t.items.size() == 6 && tree.node(t.items[5]).kind != PickleKind::kNone) {
    const PickleNode& v = tree.node(t.items[5]);
    if (v.kind != PickleKind::kTuple || v.items.size() != 3) {
      Corrupt("storage view metadata is " + tree.Describe(t.items[5]));
    }
    pid.has_view = true;
    pid.view_key = KeyText(tree, v.items[0], "storage view key");
    pid.view_offset = IntValue(tree, v.items[1], "storage view offset");
    pid.view_size = IntValue(tree, v.items[2], "storage view size");
    if (pid.view_offset < 0 || pid.view_size < 0 ||
        pid.view_offset > pid.numel ||
        pid.view_size > pid.numel - pid.view_offset) {
      Corrupt("storage view out of range of storage '" + pid.key + "'");
    }
  }
  return pid;
}

// A byte range of one storage.
struct StorageSlice {
  c10::Storage storage;
  int64_t byte_offset = 0;
  int64_t nbytes = 0;
};

class Interpreter {
 public:
  Interpreter(const PickleTree& tree,
              const std::function<at::Tensor(const StorageRecord&)>& loader)
      : tree_(tree), loader_(loader) {}

  bool IsTensor(PickleId id) const {
    const PickleNode& n = tree_.node(id);
    if (n.kind != PickleKind::kObject) return false;
    return IsRebuild(n.callable);
  }

  at::Tensor Tensor(PickleId id, int depth = 0) {
    const auto it = tensors_.find(id);
    if (it != tensors_.end()) return it->second;
    const PickleNode& n = tree_.node(id);
    if (n.kind != PickleKind::kObject) {
      Corrupt("expected a tensor, found " + tree_.Describe(id));
    }
    at::Tensor t = Call(n.callable, n.args, depth);
    tensors_.emplace(id, t);
    return t;
  }

  const std::vector<std::pair<PickleId, PickleId>>* DictEntries(
      PickleId id) const {
    const PickleNode& n = tree_.node(id);
    if (n.kind == PickleKind::kDict) return &n.entries;
    if (n.kind == PickleKind::kObject &&
        (!n.entries.empty() ||
         tree_.IsGlobal(n.callable, "collections", "OrderedDict"))) {
      return &n.entries;
    }
    return nullptr;
  }

 private:
  bool IsRebuild(PickleId callable) const {
    const PickleNode& g = tree_.node(callable);
    if (g.kind != PickleKind::kGlobal) return false;
    if (g.text == "torch._utils") {
      return g.name == "_rebuild_tensor_v2" || g.name == "_rebuild_tensor" ||
             g.name == "_rebuild_tensor_v3" || g.name == "_rebuild_parameter" ||
             g.name == "_rebuild_parameter_with_state" ||
             g.name == "_rebuild_from_type_v2";
    }
    return g.text == "torch._tensor" && g.name == "_rebuild_from_type_v2";
  }

  const std::vector<PickleId>& Args(PickleId args,
                                    size_t min_count,
                                    const std::string& fn) const {
    const PickleNode& a = tree_.node(args);
    if (a.kind != PickleKind::kTuple || a.items.size() < min_count) {
      Corrupt(fn + " called with " + tree_.Describe(args) + ", expected " +
              std::to_string(min_count) + "+ arguments");
    }
    return a.items;
  }

  std::vector<int64_t> IntTuple(PickleId id, const char* what) const {
    const PickleNode* n = &tree_.node(id);
    // torch.Size pickles as Size((d0, d1, ...)).
    if (n->kind == PickleKind::kObject &&
        tree_.IsGlobal(n->callable, "torch", "Size")) {
      const PickleNode& a = tree_.node(n->args);
      if (a.kind != PickleKind::kTuple || a.items.size() != 1) {
        Corrupt(std::string("bad torch.Size for ") + what);
      }
      n = &tree_.node(a.items[0]);
    }
    if (n->kind != PickleKind::kTuple && n->kind != PickleKind::kList) {
      Corrupt(std::string(what) + " is " + tree_.Describe(id) +
              ", expected a tuple of ints");
    }
    if (n->items.size() > kMaxDims) {
      Corrupt(std::string(what) + " has more than 64 dimensions");
    }
    std::vector<int64_t> v;
    v.reserve(n->items.size());
    for (PickleId item : n->items) v.push_back(IntValue(tree_, item, what));
    return v;
  }

  at::Tensor Call(PickleId callable, PickleId args, int depth) {
    if (depth > kMaxRebuildDepth) Corrupt("tensor rebuild nested too deeply");
    const PickleNode& g = tree_.node(callable);
    if (g.kind != PickleKind::kGlobal || !IsRebuild(callable)) {
      Corrupt("expected a tensor, found an object built by " +
              tree_.Describe(callable));
    }
    const std::string& fn = g.name;
    if (fn == "_rebuild_parameter" || fn == "_rebuild_parameter_with_state") {
      const auto& a = Args(args, 1, fn);
      return Tensor(a[0], depth + 1);
    }
    if (fn == "_rebuild_from_type_v2") {
      // (func, new_type, args, state): the tensor subclass is dropped.
      const auto& a = Args(args, 3, fn);
      return Call(a[0], a[2], depth + 1);
    }
    const bool v3 = fn == "_rebuild_tensor_v3";
    const auto& a = Args(args, v3 ? 7 : 4, fn);
    const StorageSlice slice = Storage(a[0]);
    const StoragePid pid = ParseStoragePid(tree_, a[0]);
    at::ScalarType dtype = pid.dtype;
    if (v3) {
      const PickleNode& d = tree_.node(a[6]);
      bool known = false;
      if (d.kind == PickleKind::kGlobal && d.text == "torch") {
        for (const auto& e : kTorchDtypes) {
          if (d.name == e.name) {
            dtype = e.dtype;
            known = true;
          }
        }
      }
      if (!known) Corrupt("unsupported tensor dtype " + tree_.Describe(a[6]));
    }
    const int64_t offset = IntValue(tree_, a[1], "storage offset");
    const std::vector<int64_t> sizes = IntTuple(a[2], "tensor size");
    const std::vector<int64_t> strides = IntTuple(a[3], "tensor stride");
    return MakeTensor(pid.key, slice, dtype, offset, sizes, strides);
  }

  // Validates that the view lies inside the storage before touching memory.
  at::Tensor MakeTensor(const std::string& key,
                        const StorageSlice& slice,
                        at::ScalarType dtype,
                        int64_t offset,
                        const std::vector<int64_t>& sizes,
                        const std::vector<int64_t>& strides) {
    if (sizes.size() != strides.size()) {
      Corrupt("tensor size " + ShapeString(sizes) + " and stride " +
              ShapeString(strides) + " differ in length");
    }
    const int64_t itemsize = static_cast<int64_t>(c10::elementSize(dtype));
    if (offset < 0) Corrupt("negative storage offset");
    int64_t numel = 1;
    int64_t last = 0;  // Highest element index touched, relative to offset.
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] < 0 || strides[i] < 0) {
        Corrupt("negative tensor size or stride " + ShapeString(sizes) + "/" +
                ShapeString(strides));
      }
      int64_t span = 0;
      if (__builtin_mul_overflow(numel, sizes[i], &numel) ||
          (sizes[i] > 0 &&
           __builtin_mul_overflow(sizes[i] - 1, strides[i], &span)) ||
          __builtin_add_overflow(last, span, &last)) {
        Corrupt("tensor size " + ShapeString(sizes) + " overflows");
      }
    }
    const int64_t storage_elems = slice.nbytes / itemsize;
    int64_t end = 0;
    if (numel > 0 &&
        (__builtin_add_overflow(offset, last, &end) || end >= storage_elems)) {
      throw std::runtime_error(
          "storage out of range: tensor of size " + ShapeString(sizes) +
          ", stride " + ShapeString(strides) + ", offset " +
          std::to_string(offset) + " needs more than the " +
          std::to_string(storage_elems) + " elements of storage '" + key + "'");
    }
    if (slice.byte_offset % itemsize != 0) {
      Corrupt("storage view of '" + key + "' is misaligned");
    }
    const int64_t base = slice.byte_offset / itemsize;
    at::Tensor t = at::empty({0}, at::TensorOptions().dtype(dtype));
    // An empty tensor touches no memory; its offset is irrelevant and is not
    // passed on, so no size arithmetic in set_ can overflow.
    t.set_(slice.storage, numel > 0 ? base + offset : 0, sizes, strides);
    return t;
  }

  StorageSlice Storage(PickleId persid) {
    const StoragePid pid = ParseStoragePid(tree_, persid);
    const int64_t itemsize = static_cast<int64_t>(c10::elementSize(pid.dtype));
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(pid.numel, itemsize, &nbytes)) {
      Corrupt("storage '" + pid.key + "' size overflows");
    }
    auto it = storages_.find(pid.key);
    if (it == storages_.end()) {
      StorageRecord record;
      record.key = pid.key;
      record.dtype = pid.dtype;
      record.numel = pid.numel;
      const at::Tensor bytes = loader_(record);
      if (!bytes.defined() || bytes.scalar_type() != at::kByte ||
          bytes.dim() != 1 || !bytes.is_contiguous() ||
          bytes.numel() != nbytes) {
        Corrupt("storage '" + pid.key + "' was not loaded with " +
                std::to_string(nbytes) + " bytes");
      }
      StorageSlice s;
      s.storage = bytes.storage();
      s.byte_offset = bytes.storage_offset();
      s.nbytes = nbytes;
      it = storages_.emplace(pid.key, s).first;
    } else if (it->second.nbytes != nbytes) {
      // The same storage seen under another type: allowed only if the byte
      // size agrees (torch 2.x untyped storages).
      Corrupt("storage '" + pid.key + "' is referenced with sizes " +
              std::to_string(it->second.nbytes) + " and " +
              std::to_string(nbytes) + " bytes");
    }
    StorageSlice s = it->second;
    if (pid.has_view) {
      s.byte_offset += pid.view_offset * itemsize;
      s.nbytes = pid.view_size * itemsize;
    }
    return s;
  }

  const PickleTree& tree_;
  const std::function<at::Tensor(const StorageRecord&)>& loader_;
  std::unordered_map<PickleId, at::Tensor> tensors_;
  std::unordered_map<std::string, StorageSlice> storages_;
};

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// select_prefix, then common-prefix stripping; rejects duplicate names.
void ApplyNameOptions(const CheckpointReadOptions& options, StateDict* sd) {
  if (!options.select_prefix.empty()) {
    std::vector<std::pair<std::string, at::Tensor>> kept;
    for (auto& [name, t] : sd->tensors) {
      if (StartsWith(name, options.select_prefix) &&
          name.size() > options.select_prefix.size()) {
        kept.emplace_back(name.substr(options.select_prefix.size()), t);
      }
    }
    if (kept.empty()) {
      throw std::runtime_error("no tensor name starts with '" +
                               options.select_prefix + "'");
    }
    sd->tensors = std::move(kept);
    sd->stripped_prefixes.push_back(options.select_prefix);
  }
  for (int round = 0; round < 8 && !sd->tensors.empty(); ++round) {
    bool stripped = false;
    for (const std::string& prefix : options.strip_prefixes) {
      if (prefix.empty()) continue;
      const bool all = std::all_of(
          sd->tensors.begin(), sd->tensors.end(), [&](const auto& e) {
            return StartsWith(e.first, prefix) &&
                   e.first.size() > prefix.size();
          });
      if (!all) continue;
      for (auto& e : sd->tensors) e.first = e.first.substr(prefix.size());
      sd->stripped_prefixes.push_back(prefix);
      stripped = true;
      break;
    }
    if (!stripped) break;
  }
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < sd->tensors.size(); ++i) {
    if (!seen.emplace(sd->tensors[i].first, i).second) {
      throw std::runtime_error("duplicate tensor name '" +
                               sd->tensors[i].first + "'");
    }
  }
}

// ---------------------------------------------------------------------------
// Containers.

class MemoryAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MemoryAdapter(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos,
              void* buf,
              size_t n,
              const char* = "") const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<uint64_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

class FileAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  FileAdapter(int fd, uint64_t size) : fd_(fd), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos,
              void* buf,
              size_t n,
              const char* = "") const override {
    size_t done = 0;
    while (done < n && pos + done < size_) {
      const ssize_t r = ::pread(fd_,
                                static_cast<char*>(buf) + done,
                                n - done,
                                static_cast<off_t>(pos + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

 private:
  int fd_;
  uint64_t size_;
};

std::string C10Message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  const size_t nl = msg.find('\n');
  if (nl != std::string::npos) msg.resize(nl);
  return msg;
}

// getRecord with the record named in errors (CRC mismatches end up here).
std::tuple<at::DataPtr, size_t> GetRecord(
    caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  try {
    return reader.getRecord(name);
  } catch (const c10::Error& e) {
    throw std::runtime_error("corrupt zip record '" + name + "' (" +
                             C10Message(e) + ")");
  }
}

void ByteSwap(at::Tensor bytes, at::ScalarType dtype) {
  size_t unit = c10::elementSize(dtype);
  if (dtype == at::kComplexFloat || dtype == at::kComplexDouble) unit /= 2;
  if (unit <= 1) return;
  uint8_t* p = bytes.data_ptr<uint8_t>();
  const size_t n = static_cast<size_t>(bytes.numel());
  for (size_t i = 0; i + unit <= n; i += unit)
    std::reverse(p + i, p + i + unit);
}

StateDict ReadZip(std::shared_ptr<caffe2::serialize::ReadAdapterInterface> in,
                  const CheckpointReadOptions& options) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(in);
  } catch (const c10::Error& e) {
    throw std::runtime_error("corrupt or truncated zip archive (" +
                             C10Message(e) + ")");
  }
  if (!reader->hasRecord("data.pkl")) {
    if (reader->hasRecord("constants.pkl")) {
      throw std::runtime_error(
          "this is a TorchScript archive (torch.jit.save), not a "
          "torch.save checkpoint; save model.state_dict() instead");
    }
    throw std::runtime_error("zip archive has no data.pkl record");
  }
  bool big_endian = false;
  if (reader->hasRecord("byteorder")) {
    auto [ptr, size] = GetRecord(*reader, "byteorder");
    std::string order(static_cast<const char*>(ptr.get()),
                      std::min<size_t>(size, 16));
    while (!order.empty() &&
           std::isspace(static_cast<unsigned char>(order.back()))) {
      order.pop_back();
    }
    if (order == "big") {
      big_endian = true;
    } else if (order != "little") {
      Corrupt("unknown byteorder record '" + order + "'");
    }
  }
  auto [pkl, pkl_size] = GetRecord(*reader, "data.pkl");
  PickleTree tree;
  try {
    tree = ParsePickle(pkl.get(), pkl_size, nullptr, options.pickle);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("record 'data.pkl': ") + e.what());
  }
  const auto load = [&](const StorageRecord& r) {
    const std::string name = "data/" + r.key;
    if (!reader->hasRecord(name)) {
      Corrupt("storage record '" + name + "' is missing from the archive");
    }
    auto [ptr, size] = GetRecord(*reader, name);
    const uint64_t expected =
        static_cast<uint64_t>(r.numel) * c10::elementSize(r.dtype);
    if (size != expected) {
      throw std::runtime_error(
          "storage out of range: record '" + name + "' holds " +
          std::to_string(size) + " bytes, the pickle expects " +
          std::to_string(r.numel) + " x " + DtypeName(r.dtype) + " = " +
          std::to_string(expected) + " bytes");
    }
    c10::Storage storage(
        c10::Storage::use_byte_size_t(), size, std::move(ptr), nullptr, false);
    at::Tensor bytes = at::empty({0}, at::TensorOptions().dtype(at::kByte));
    bytes.set_(storage, 0, {static_cast<int64_t>(size)}, {1});
    if (big_endian) ByteSwap(bytes, r.dtype);
    return bytes;
  };
  StateDict sd = StateDictFromPickle(tree, load, options);
  sd.format = "zip";
  return sd;
}

// Pre-1.6 torch.save: magic-number pickle, protocol pickle, sys-info pickle,
// the object pickle, the storage-key pickle, then per storage an int64
// element count and the raw bytes.
StateDict ReadLegacy(const std::string& bytes,
                     const CheckpointReadOptions& options) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  size_t pos = 0;
  const auto next = [&]() {
    size_t used = 0;
    PickleTree t =
        ParsePickle(data + pos, size - pos, &used, options.pickle, pos);
    pos += used;
    return t;
  };
  {
    const PickleTree magic = next();
    const PickleNode& m = magic.node(magic.root());
    // 0x1950a86a20f9469cfc6c, little-endian.
    static const uint8_t kMagic[] = {
        0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    std::string le = m.text;
    while (!le.empty() && le.back() == '\0') le.pop_back();
    if (m.kind != PickleKind::kBigInt || le.size() != sizeof(kMagic) ||
        std::memcmp(le.data(), kMagic, sizeof(kMagic)) != 0) {
      throw std::runtime_error(
          "not a PyTorch checkpoint: a pickle file without torch.save's "
          "magic number");
    }
  }
  {
    const PickleTree proto = next();
    const PickleNode& p = proto.node(proto.root());
    if (p.kind != PickleKind::kInt || p.int_value != 1001) {
      throw std::runtime_error("unsupported legacy checkpoint protocol (" +
                               proto.Describe(proto.root()) + ")");
    }
  }
  {
    const PickleTree info = next();
    const PickleNode& d = info.node(info.root());
    if (d.kind != PickleKind::kDict) Corrupt("legacy sys-info is not a dict");
    for (const auto& [k, v] : d.entries) {
      if (info.IsString(k) && info.node(k).text == "little_endian" &&
          info.node(v).kind == PickleKind::kBool && !info.node(v).bool_value) {
        throw std::runtime_error(
            "big-endian legacy checkpoints are not supported");
      }
    }
  }
  const PickleTree tree = next();
  const PickleTree keys = next();
  const PickleNode& key_list = keys.node(keys.root());
  if (key_list.kind != PickleKind::kList) {
    Corrupt("legacy storage-key list is " + keys.Describe(keys.root()));
  }
  // The element size of each storage comes from the persistent ids.
  std::unordered_map<std::string, at::ScalarType> dtypes;
  for (size_t i = 0; i < tree.size(); ++i) {
    if (tree.node(static_cast<PickleId>(i)).kind == PickleKind::kPersistentId) {
      const StoragePid pid = ParseStoragePid(tree, static_cast<PickleId>(i));
      dtypes.emplace(pid.key, pid.dtype);
    }
  }
  struct Span {
    size_t offset;
    int64_t numel;
  };
  std::unordered_map<std::string, Span> spans;
  for (PickleId k : key_list.items) {
    const std::string key = KeyText(keys, k, "legacy storage key");
    const auto dt = dtypes.find(key);
    if (dt == dtypes.end()) {
      Corrupt("legacy storage '" + key + "' is not referenced by any tensor");
    }
    if (size - pos < 8) {
      throw std::runtime_error("truncated: storage '" + key +
                               "' header missing at byte " +
                               std::to_string(pos));
    }
    int64_t numel = 0;
    std::memcpy(&numel, data + pos, 8);
    pos += 8;
    const uint64_t itemsize = c10::elementSize(dt->second);
    if (numel < 0 || static_cast<uint64_t>(numel) > (size - pos) / itemsize) {
      throw std::runtime_error(
          "truncated: storage '" + key + "' of " + std::to_string(numel) +
          " elements runs past the end of the file (byte " +
          std::to_string(pos) + " of " + std::to_string(size) + ")");
    }
    if (!spans.emplace(key, Span{pos, numel}).second) {
      Corrupt("legacy storage '" + key + "' listed twice");
    }
    pos += static_cast<size_t>(numel) * itemsize;
  }
  const auto load = [&](const StorageRecord& r) {
    const auto it = spans.find(r.key);
    if (it == spans.end()) {
      Corrupt("legacy storage '" + r.key + "' is missing");
    }
    if (it->second.numel != r.numel) {
      throw std::runtime_error(
          "storage out of range: legacy storage '" + r.key + "' holds " +
          std::to_string(it->second.numel) + " elements, the pickle expects " +
          std::to_string(r.numel));
    }
    const int64_t nbytes =
        r.numel * static_cast<int64_t>(c10::elementSize(r.dtype));
    at::Tensor out = at::empty({nbytes}, at::TensorOptions().dtype(at::kByte));
    if (nbytes > 0) {
      std::memcpy(out.data_ptr<uint8_t>(),
                  data + it->second.offset,
                  static_cast<size_t>(nbytes));
    }
    return out;
  };
  StateDict sd = StateDictFromPickle(tree, load, options);
  sd.format = "legacy";
  return sd;
}

enum class Container { kZip, kLegacy, kSafetensors, kTar, kUnknown };

Container Sniff(const uint8_t* head, size_t n, uint64_t file_size) {
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 &&
      head[3] == 4) {
    return Container::kZip;
  }
  // Before the pickle check: a safetensors header length such as 0x280 also
  // starts with 0x80 0x02, but only safetensors has '{' at byte 8.
  if (LooksLikeSafetensors(head, n, file_size)) return Container::kSafetensors;
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
    return Container::kLegacy;
  }
  if (n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0) {
    return Container::kTar;
  }
  return Container::kUnknown;
}

std::string HexHead(const uint8_t* head, size_t n) {
  std::string s;
  char buf[8];
  for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
    std::snprintf(buf, sizeof(buf), "%s%02x", i ? " " : "", head[i]);
    s += buf;
  }
  return s;
}

[[noreturn]] void NotACheckpoint(Container c, const uint8_t* head, size_t n) {
  if (c == Container::kTar) {
    throw std::runtime_error(
        "unsupported tar-based checkpoint (torch < 0.4); re-save it with a "
        "newer torch");
  }
  throw std::runtime_error(
      "not a PyTorch checkpoint: starts with bytes " + HexHead(head, n) +
      " (expected a zip archive, a legacy torch.save pickle or safetensors)");
}

// Runs `f`, turning every failure into a std::runtime_error that names the
// source.
template <typename F>
StateDict WithContext(const std::string& source, F&& f) {
  const std::string prefix = "Cannot read checkpoint '" + source + "': ";
  try {
    return f();
  } catch (const c10::Error& e) {
    throw std::runtime_error(prefix + C10Message(e));
  } catch (const std::bad_alloc&) {
    throw std::runtime_error(prefix +
                             "out of memory (a size in the file is probably "
                             "corrupt)");
  } catch (const std::exception& e) {
    throw std::runtime_error(prefix + e.what());
  }
}

}  // namespace

void CheckpointReadOptions::Check() const {
  pickle.Check();
  if (unwrap && unwrap_keys.empty()) {
    throw std::invalid_argument(
        "CheckpointReadOptions: unwrap is on but unwrap_keys is empty");
  }
}

StateDict StateDictFromPickle(
    const PickleTree& tree,
    const std::function<at::Tensor(const StorageRecord&)>& load_storage,
    const CheckpointReadOptions& options) {
  options.Check();
  Interpreter interp(tree, load_storage);
  StateDict sd;
  PickleId current = tree.root();
  const auto* entries = interp.DictEntries(current);
  if (entries == nullptr) {
    if (interp.IsTensor(current)) {
      throw std::runtime_error(
          "the checkpoint holds a single tensor, not a state dict");
    }
    throw std::runtime_error("the checkpoint holds " + tree.Describe(current) +
                             ", not a dict of tensors");
  }
  const auto has_tensor = [&](const auto& list) {
    for (const auto& kv : list) {
      if (interp.IsTensor(kv.second)) return true;
    }
    return false;
  };
  for (int round = 0; options.unwrap && round < 4 && !has_tensor(*entries);
       ++round) {
    bool descended = false;
    for (const std::string& key : options.unwrap_keys) {
      for (const auto& [k, v] : *entries) {
        if (!tree.IsString(k) || tree.node(k).text != key) continue;
        const auto* inner = interp.DictEntries(v);
        if (inner == nullptr) continue;
        sd.unwrapped.push_back(key);
        current = v;
        entries = inner;
        descended = true;
        break;
      }
      if (descended) break;
    }
    if (!descended) break;
  }
  std::unordered_map<std::string, size_t> index;
  for (const auto& [k, v] : *entries) {
    if (!tree.IsString(k)) {
      sd.skipped.push_back("<" + tree.Describe(k) + ">");
      continue;
    }
    const std::string& name = tree.node(k).text;
    if (!interp.IsTensor(v)) {
      sd.skipped.push_back(name);
      continue;
    }
    at::Tensor t = interp.Tensor(v);
    const auto it = index.find(name);
    if (it != index.end()) {
      sd.tensors[it->second].second = t;  // Python dict: last value wins.
    } else {
      index.emplace(name, sd.tensors.size());
      sd.tensors.emplace_back(name, t);
    }
  }
  if (sd.tensors.empty()) {
    std::string keys;
    size_t shown = 0;
    for (const auto& kv : *entries) {
      if (shown++ == 20) {
        keys += ", ...";
        break;
      }
      keys += (keys.empty() ? "" : ", ") + tree.Describe(kv.first);
    }
    throw std::runtime_error("no tensors found in the checkpoint's " +
                             tree.Describe(current) + " (keys: " + keys + ")");
  }
  ApplyNameOptions(options, &sd);
  return sd;
}

StateDict ReadCheckpoint(const std::string& path,
                         const CheckpointReadOptions& options) {
  return WithContext(path, [&]() -> StateDict {
    options.Check();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      throw std::runtime_error(std::string("cannot open: ") +
                               std::strerror(errno));
    }
    std::shared_ptr<int> closer(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      throw std::runtime_error("not a regular file");
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size == 0) throw std::runtime_error("empty file, not a checkpoint");
    FileAdapter adapter(fd, size);
    uint8_t head[512];
    const size_t n = adapter.read(0, head, sizeof(head));
    StateDict sd;
    switch (Sniff(head, n, size)) {
      case Container::kZip:
        sd = ReadZip(std::make_shared<FileAdapter>(fd, size), options);
        break;
      case Container::kLegacy: {
        std::string bytes(size, '\0');
        if (adapter.read(0, bytes.data(), size) != size) {
          throw std::runtime_error("short read");
        }
        sd = ReadLegacy(bytes, options);
        break;
      }
      case Container::kSafetensors:
        sd = ReadSafetensors(path);
        ApplyNameOptions(options, &sd);
        break;
      default:
        NotACheckpoint(Sniff(head, n, size), head, n);
    }
    sd.source = path;
    return sd;
  });
}

StateDict ReadCheckpointFromMemory(const std::string& bytes,
                                   const std::string& source_name,
                                   const CheckpointReadOptions& options) {
  return WithContext(source_name, [&]() -> StateDict {
    options.Check();
    if (bytes.empty()) throw std::runtime_error("empty, not a checkpoint");
    const auto* head = reinterpret_cast<const uint8_t*>(bytes.data());
    const size_t n = std::min<size_t>(bytes.size(), 512);
    StateDict sd;
    switch (Sniff(head, n, bytes.size())) {
      case Container::kZip:
        sd = ReadZip(std::make_shared<MemoryAdapter>(bytes), options);
        break;
      case Container::kLegacy:
        sd = ReadLegacy(bytes, options);
        break;
      case Container::kSafetensors:
        sd = ReadSafetensorsFromMemory(bytes, source_name);
        ApplyNameOptions(options, &sd);
        break;
      default:
        NotACheckpoint(Sniff(head, n, bytes.size()), head, n);
    }
    sd.source = source_name;
    return sd;
  });
}

}  // namespace l2m
