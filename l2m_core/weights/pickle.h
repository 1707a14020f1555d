#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace l2m {

// A defensive reader for the Python pickle opcodes that torch.save emits
// (protocols 0-5). It never executes anything: GLOBAL/REDUCE/NEWOBJ/BUILD only
// record what would have been called, so unknown classes (optimizer states,
// Lightning hyper-parameters, numpy scalars) still parse into opaque objects.
// The interpretation of torch-specific objects lives in checkpoint.cc.

// Index of a node in a PickleTree.
using PickleId = int32_t;
constexpr PickleId kNoPickleId = -1;

enum class PickleKind : uint8_t {
  kNone,
  kBool,
  kInt,
  kBigInt,  // Integer beyond int64; `text` holds the little-endian bytes.
  kFloat,
  kString,  // UTF-8 (or raw bytes of a protocol-0 string).
  kBytes,
  kTuple,
  kList,
  kDict,
  kSet,
  kGlobal,        // `text` = module, `name` = qualified name.
  kObject,        // Result of REDUCE/NEWOBJ/INST/OBJ, see PickleNode.
  kPersistentId,  // `args` = the persistent id value.
};

const char* PickleKindName(PickleKind kind);

struct PickleNode {
  PickleKind kind = PickleKind::kNone;
  bool bool_value = false;
  int64_t int_value = 0;
  double float_value = 0.0;
  std::string text;
  std::string name;
  // Tuple/list/set elements; for objects, items added by APPEND(S).
  std::vector<PickleId> items;
  // Dict entries in insertion order; for objects, items added by SETITEM(S).
  std::vector<std::pair<PickleId, PickleId>> entries;
  // Objects: what was called with what; state is the last BUILD argument.
  PickleId callable = kNoPickleId;
  PickleId args = kNoPickleId;
  PickleId kwargs = kNoPickleId;
  PickleId state = kNoPickleId;
};

struct PickleOptions {
  // Upper bound on the number of values built; a pickle creates at most one
  // per opcode, so this mainly bounds memory on hostile input.
  size_t max_nodes = size_t{1} << 24;
  // Upper bound on a single string/bytes value.
  size_t max_string_bytes = size_t{1} << 30;
  // Highest protocol accepted (Python 3.8+ writes up to 5).
  int max_protocol = 5;

  void Check() const;
};

// An arena of immutable nodes; children refer to each other by id, so shared
// or even cyclic references (possible via the memo) cannot leak or recurse.
class PickleTree {
 public:
  PickleId root() const { return root_; }
  size_t size() const { return nodes_.size(); }
  // Throws std::runtime_error for an invalid id.
  const PickleNode& node(PickleId id) const;

  bool IsGlobal(PickleId id, const char* module, const char* name) const;
  bool IsString(PickleId id) const;
  // Object built by calling the given global.
  bool IsObjectOf(PickleId id, const char* module, const char* name) const;
  // Short human-readable description for error messages, e.g.
  // "object collections.OrderedDict" or "int 3".
  std::string Describe(PickleId id) const;

 private:
  friend class PickleParser;
  std::vector<PickleNode> nodes_;
  PickleId root_ = kNoPickleId;
};

// Parses one pickle from data[0, size). On success *consumed (when non-null)
// is the offset just past the STOP opcode, so several pickles can be read in a
// row (the legacy torch format). Throws std::runtime_error naming the byte
// offset for every malformed input; `offset_base` is added to offsets in
// messages so they refer to the enclosing file.
PickleTree ParsePickle(const void* data,
                       size_t size,
                       size_t* consumed = nullptr,
                       const PickleOptions& options = PickleOptions(),
                       size_t offset_base = 0);

}  // namespace l2m
