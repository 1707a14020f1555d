#include "l2m_core/weights/pickle.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace l2m {
namespace {

// Opcode bytes from CPython's Lib/pickle.py (the format definition).
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kFloat = 'F',
  kInt = 'I',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kLong = 'L',
  kBinInt2 = 'M',
  kNone = 'N',
  kPersId = 'P',
  kBinPersId = 'Q',
  kReduce = 'R',
  kString = 'S',
  kBinString = 'T',
  kShortBinString = 'U',
  kUnicode = 'V',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kGet = 'g',
  kBinGet = 'h',
  kInst = 'i',
  kLongBinGet = 'j',
  kList = 'l',
  kEmptyList = ']',
  kObj = 'o',
  kPut = 'p',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinFloat = 'G',
  kProto = 0x80,
  kNewObj = 0x81,
  kExt1 = 0x82,
  kExt2 = 0x83,
  kExt4 = 0x84,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kEmptySet = 0x8f,
  kAddItems = 0x90,
  kFrozenSet = 0x91,
  kNewObjEx = 0x92,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
  kByteArray8 = 0x96,
  kNextBuffer = 0x97,
  kReadOnlyBuffer = 0x98,
};

std::string OpDisplay(uint8_t op) {
  char buf[32];
  if (op >= 0x20 && op < 0x7f && op != '\'') {
    std::snprintf(buf, sizeof(buf), "0x%02x '%c'", op, op);
  } else {
    std::snprintf(buf, sizeof(buf), "0x%02x", op);
  }
  return buf;
}

}  // namespace

const char* PickleKindName(PickleKind kind) {
  switch (kind) {
    case PickleKind::kNone:
      return "None";
    case PickleKind::kBool:
      return "bool";
    case PickleKind::kInt:
      return "int";
    case PickleKind::kBigInt:
      return "big int";
    case PickleKind::kFloat:
      return "float";
    case PickleKind::kString:
      return "str";
    case PickleKind::kBytes:
      return "bytes";
    case PickleKind::kTuple:
      return "tuple";
    case PickleKind::kList:
      return "list";
    case PickleKind::kDict:
      return "dict";
    case PickleKind::kSet:
      return "set";
    case PickleKind::kGlobal:
      return "global";
    case PickleKind::kObject:
      return "object";
    case PickleKind::kPersistentId:
      return "persistent id";
  }
  return "?";
}

void PickleOptions::Check() const {
  if (max_nodes < 1)
    throw std::invalid_argument("PickleOptions: max_nodes < 1");
  if (max_protocol < 2 || max_protocol > 5) {
    throw std::invalid_argument(
        "PickleOptions: max_protocol must be in [2, 5]");
  }
}

const PickleNode& PickleTree::node(PickleId id) const {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size()) {
    throw std::runtime_error("pickle: invalid node id " + std::to_string(id));
  }
  return nodes_[static_cast<size_t>(id)];
}

bool PickleTree::IsGlobal(PickleId id,
                          const char* module,
                          const char* name) const {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size()) return false;
  const PickleNode& n = nodes_[static_cast<size_t>(id)];
  return n.kind == PickleKind::kGlobal && n.text == module && n.name == name;
}

bool PickleTree::IsString(PickleId id) const {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size()) return false;
  return nodes_[static_cast<size_t>(id)].kind == PickleKind::kString;
}

bool PickleTree::IsObjectOf(PickleId id,
                            const char* module,
                            const char* name) const {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size()) return false;
  const PickleNode& n = nodes_[static_cast<size_t>(id)];
  return n.kind == PickleKind::kObject && IsGlobal(n.callable, module, name);
}

std::string PickleTree::Describe(PickleId id) const {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size()) return "<invalid>";
  const PickleNode& n = nodes_[static_cast<size_t>(id)];
  switch (n.kind) {
    case PickleKind::kInt:
      return "int " + std::to_string(n.int_value);
    case PickleKind::kBool:
      return n.bool_value ? "True" : "False";
    case PickleKind::kString:
      return "str '" + n.text.substr(0, 64) + "'";
    case PickleKind::kGlobal:
      return "global " + n.text.substr(0, 64) + "." + n.name.substr(0, 64);
    case PickleKind::kObject: {
      if (n.callable >= 0 && static_cast<size_t>(n.callable) < nodes_.size() &&
          nodes_[static_cast<size_t>(n.callable)].kind == PickleKind::kGlobal) {
        const PickleNode& g = nodes_[static_cast<size_t>(n.callable)];
        return "object " + g.text.substr(0, 64) + "." + g.name.substr(0, 64);
      }
      return "object";
    }
    case PickleKind::kTuple:
    case PickleKind::kList:
    case PickleKind::kSet:
      return std::string(PickleKindName(n.kind)) + " of " +
             std::to_string(n.items.size());
    case PickleKind::kDict:
      return "dict of " + std::to_string(n.entries.size());
    default:
      return PickleKindName(n.kind);
  }
}

class PickleParser {
 public:
  PickleParser(const uint8_t* data,
               size_t size,
               const PickleOptions& options,
               size_t offset_base)
      : data_(data), size_(size), options_(options), base_(offset_base) {}

  PickleTree Parse(size_t* consumed) {
    options_.Check();
    if (size_ == 0) Fail("empty input, not a pickle");
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = ReadU8();
      op_ = op;
      if (Dispatch(op)) break;
    }
    if (consumed != nullptr) *consumed = pos_;
    return std::move(tree_);
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw std::runtime_error("corrupt pickle at byte " +
                             std::to_string(base_ + op_pos_) + " (opcode " +
                             OpDisplay(op_) + "): " + what);
  }

  [[noreturn]] void Truncated(size_t needed) const {
    throw std::runtime_error(
        "truncated pickle: unexpected end of data at byte " +
        std::to_string(base_ + pos_) + " (opcode at byte " +
        std::to_string(base_ + op_pos_) + " needs " + std::to_string(needed) +
        " more bytes, " + std::to_string(size_ - pos_) + " left)");
  }

  void Need(size_t n) const {
    if (n > size_ - pos_) Truncated(n);
  }

  uint8_t ReadU8() {
    Need(1);
    return data_[pos_++];
  }

  uint64_t ReadLE(size_t n) {
    Need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      v |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
    }
    pos_ += n;
    return v;
  }

  std::string ReadBytes(uint64_t n) {
    if (n > options_.max_string_bytes) {
      Fail("string of " + std::to_string(n) + " bytes exceeds the limit");
    }
    Need(static_cast<size_t>(n));
    std::string s(reinterpret_cast<const char*>(data_ + pos_),
                  static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  // Protocol-0 text argument up to (not including) '\n'.
  std::string ReadLine() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (nl == nullptr) Truncated(1);
    const size_t len =
        static_cast<size_t>(static_cast<const uint8_t*>(nl) - (data_ + pos_));
    if (len > options_.max_string_bytes) Fail("text line too long");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len + 1;
    return s;
  }

  PickleId NewNode(PickleKind kind) {
    if (tree_.nodes_.size() >= options_.max_nodes) {
      Fail("more than " + std::to_string(options_.max_nodes) +
           " values (limit)");
    }
    tree_.nodes_.emplace_back();
    tree_.nodes_.back().kind = kind;
    return static_cast<PickleId>(tree_.nodes_.size() - 1);
  }

  PickleNode& Node(PickleId id) {
    return tree_.nodes_[static_cast<size_t>(id)];
  }

  size_t FrameBase() const { return marks_.empty() ? 0 : marks_.back(); }

  void Push(PickleId id) { stack_.push_back(id); }

  PickleId Pop() {
    if (stack_.size() <= FrameBase()) Fail("stack underflow");
    const PickleId id = stack_.back();
    stack_.pop_back();
    return id;
  }

  PickleId Top() const {
    if (stack_.size() <= FrameBase()) Fail("stack underflow");
    return stack_.back();
  }

  // Everything pushed since the last MARK; removes the mark.
  std::vector<PickleId> PopMark() {
    if (marks_.empty()) Fail("no MARK on the stack");
    const size_t base = marks_.back();
    marks_.pop_back();
    std::vector<PickleId> items(stack_.begin() + static_cast<ptrdiff_t>(base),
                                stack_.end());
    stack_.resize(base);
    return items;
  }

  void PushInt(int64_t v) {
    const PickleId id = NewNode(PickleKind::kInt);
    Node(id).int_value = v;
    Push(id);
  }

  void PushString(PickleKind kind, std::string s) {
    const PickleId id = NewNode(kind);
    Node(id).text = std::move(s);
    Push(id);
  }

  // Two's-complement little-endian integer of n bytes (LONG1/LONG4).
  void PushLong(const std::string& bytes) {
    if (bytes.size() <= 8) {
      uint64_t v = 0;
      for (size_t i = 0; i < bytes.size(); ++i) {
        v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
      }
      if (!bytes.empty() && bytes.size() < 8 &&
          (static_cast<uint8_t>(bytes.back()) & 0x80)) {
        v |= ~uint64_t{0} << (8 * bytes.size());  // Sign-extend.
      }
      PushInt(static_cast<int64_t>(v));
    } else {
      PushString(PickleKind::kBigInt, bytes);
    }
  }

  void PushTextInt(const std::string& line, bool is_long) {
    std::string s = line;
    if (is_long && !s.empty() && s.back() == 'L') s.pop_back();
    if (!is_long && (s == "00" || s == "01")) {
      const PickleId id = NewNode(PickleKind::kBool);
      Node(id).bool_value = s == "01";
      Push(id);
      return;
    }
    if (s.empty()) Fail("empty integer literal");
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size()) Fail("bad integer literal");
    if (errno == ERANGE) {
      PushString(PickleKind::kBigInt, s);  // Decimal text; rare, kept opaque.
      return;
    }
    PushInt(static_cast<int64_t>(v));
  }

  PickleId MakeSequence(PickleKind kind, std::vector<PickleId> items) {
    const PickleId id = NewNode(kind);
    Node(id).items = std::move(items);
    return id;
  }

  PickleId MakeGlobal(std::string module, std::string name) {
    const PickleId id = NewNode(PickleKind::kGlobal);
    Node(id).text = std::move(module);
    Node(id).name = std::move(name);
    return id;
  }

  PickleId MakeObject(PickleId callable, PickleId args, PickleId kwargs) {
    const PickleId id = NewNode(PickleKind::kObject);
    Node(id).callable = callable;
    Node(id).args = args;
    Node(id).kwargs = kwargs;
    return id;
  }

  void AppendTo(PickleId target, const std::vector<PickleId>& values) {
    PickleNode& t = Node(target);
    if (t.kind != PickleKind::kList && t.kind != PickleKind::kObject) {
      Fail(std::string("APPEND to a ") + PickleKindName(t.kind));
    }
    t.items.insert(t.items.end(), values.begin(), values.end());
  }

  void SetItemsOn(PickleId target, const std::vector<PickleId>& kv) {
    if (kv.size() % 2 != 0) Fail("odd number of items for SETITEMS");
    PickleNode& t = Node(target);
    if (t.kind != PickleKind::kDict && t.kind != PickleKind::kObject) {
      Fail(std::string("SETITEM on a ") + PickleKindName(t.kind));
    }
    for (size_t i = 0; i < kv.size(); i += 2) {
      t.entries.emplace_back(kv[i], kv[i + 1]);
    }
  }

  void Memoize(uint64_t index, PickleId value) {
    if (memo_.size() >= options_.max_nodes) Fail("memo too large");
    memo_[index] = value;
  }

  PickleId MemoGet(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) {
      Fail("memo key " + std::to_string(index) + " not found");
    }
    return it->second;
  }

  uint64_t ParseMemoIndex(const std::string& line) {
    if (line.empty() || line.size() > 19) Fail("bad memo index");
    for (char c : line) {
      if (c < '0' || c > '9') Fail("bad memo index");
    }
    return std::strtoull(line.c_str(), nullptr, 10);
  }

  // Returns true at STOP.
  bool Dispatch(uint8_t op) {
    switch (op) {
      case kProto: {
        const int proto = ReadU8();
        if (proto > options_.max_protocol) {
          Fail("unsupported pickle protocol " + std::to_string(proto));
        }
        return false;
      }
      case kFrame: {
        const uint64_t n = ReadLE(8);
        if (n > size_ - pos_) Truncated(static_cast<size_t>(n));
        return false;  // Framing is only a read-ahead hint.
      }
      case kStop: {
        if (stack_.empty()) Fail("STOP with an empty stack");
        tree_.root_ = stack_.back();
        return true;
      }
      case kMark:
        marks_.push_back(stack_.size());
        return false;
      case kPop:
        if (stack_.size() <= FrameBase() && !marks_.empty()) {
          PopMark();  // Python pops the mark itself in that case.
        } else {
          Pop();
        }
        return false;
      case kPopMark:
        PopMark();
        return false;
      case kDup:
        Push(Top());
        return false;
      case kNone:
        Push(NewNode(PickleKind::kNone));
        return false;
      case kNewTrue:
      case kNewFalse: {
        const PickleId id = NewNode(PickleKind::kBool);
        Node(id).bool_value = op == kNewTrue;
        Push(id);
        return false;
      }
      case kBinInt:
        PushInt(static_cast<int32_t>(static_cast<uint32_t>(ReadLE(4))));
        return false;
      case kBinInt1:
        PushInt(static_cast<int64_t>(ReadLE(1)));
        return false;
      case kBinInt2:
        PushInt(static_cast<int64_t>(ReadLE(2)));
        return false;
      case kInt:
        PushTextInt(ReadLine(), false);
        return false;
      case kLong:
        PushTextInt(ReadLine(), true);
        return false;
      case kLong1: {
        const size_t n = static_cast<size_t>(ReadLE(1));
        PushLong(ReadBytes(n));
        return false;
      }
      case kLong4: {
        const int32_t n =
            static_cast<int32_t>(static_cast<uint32_t>(ReadLE(4)));
        if (n < 0) Fail("negative LONG4 length");
        PushLong(ReadBytes(static_cast<uint64_t>(n)));
        return false;
      }
      case kFloat: {
        const std::string line = ReadLine();
        char* end = nullptr;
        const double v = std::strtod(line.c_str(), &end);
        if (line.empty() || end != line.c_str() + line.size()) {
          Fail("bad float literal");
        }
        const PickleId id = NewNode(PickleKind::kFloat);
        Node(id).float_value = v;
        Push(id);
        return false;
      }
      case kBinFloat: {
        Need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | data_[pos_ + i];
        pos_ += 8;
        double v;
        std::memcpy(&v, &bits, sizeof(v));
        const PickleId id = NewNode(PickleKind::kFloat);
        Node(id).float_value = v;
        Push(id);
        return false;
      }
      case kString: {
        std::string line = ReadLine();
        // repr() of a str: keep the text between the quotes, escapes as-is.
        if (line.size() >= 2 && (line.front() == '\'' || line.front() == '"') &&
            line.back() == line.front()) {
          line = line.substr(1, line.size() - 2);
        } else {
          Fail("STRING argument is not quoted");
        }
        PushString(PickleKind::kString, std::move(line));
        return false;
      }
      case kUnicode:
        PushString(PickleKind::kString, ReadLine());
        return false;
      case kBinString:
      case kBinUnicode: {
        const uint64_t n = ReadLE(4);
        if (op == kBinString && (n & 0x80000000u)) Fail("negative length");
        PushString(PickleKind::kString, ReadBytes(n));
        return false;
      }
      case kShortBinString:
      case kShortBinUnicode:
        PushString(PickleKind::kString, ReadBytes(ReadLE(1)));
        return false;
      case kBinUnicode8:
        PushString(PickleKind::kString, ReadBytes(ReadLE(8)));
        return false;
      case kBinBytes:
        PushString(PickleKind::kBytes, ReadBytes(ReadLE(4)));
        return false;
      case kShortBinBytes:
        PushString(PickleKind::kBytes, ReadBytes(ReadLE(1)));
        return false;
      case kBinBytes8:
      case kByteArray8:
        PushString(PickleKind::kBytes, ReadBytes(ReadLE(8)));
        return false;
      case kEmptyTuple:
        Push(MakeSequence(PickleKind::kTuple, {}));
        return false;
      case kTuple:
        Push(MakeSequence(PickleKind::kTuple, PopMark()));
        return false;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const size_t n = static_cast<size_t>(op - kTuple1 + 1);
        std::vector<PickleId> items(n);
        for (size_t i = 0; i < n; ++i) items[n - 1 - i] = Pop();
        Push(MakeSequence(PickleKind::kTuple, std::move(items)));
        return false;
      }
      case kEmptyList:
        Push(MakeSequence(PickleKind::kList, {}));
        return false;
      case kList:
        Push(MakeSequence(PickleKind::kList, PopMark()));
        return false;
      case kAppend: {
        const PickleId value = Pop();
        AppendTo(Top(), {value});
        return false;
      }
      case kAppends: {
        const std::vector<PickleId> values = PopMark();
        AppendTo(Top(), values);
        return false;
      }
      case kEmptyDict:
        Push(NewNode(PickleKind::kDict));
        return false;
      case kDict: {
        const std::vector<PickleId> kv = PopMark();
        const PickleId id = NewNode(PickleKind::kDict);
        SetItemsOn(id, kv);
        Push(id);
        return false;
      }
      case kSetItem: {
        const PickleId value = Pop();
        const PickleId key = Pop();
        SetItemsOn(Top(), {key, value});
        return false;
      }
      case kSetItems: {
        const std::vector<PickleId> kv = PopMark();
        SetItemsOn(Top(), kv);
        return false;
      }
      case kEmptySet:
        Push(MakeSequence(PickleKind::kSet, {}));
        return false;
      case kFrozenSet:
        Push(MakeSequence(PickleKind::kSet, PopMark()));
        return false;
      case kAddItems: {
        const std::vector<PickleId> values = PopMark();
        PickleNode& t = Node(Top());
        if (t.kind != PickleKind::kSet) Fail("ADDITEMS to a non-set");
        t.items.insert(t.items.end(), values.begin(), values.end());
        return false;
      }
      case kGlobal: {
        std::string module = ReadLine();
        std::string name = ReadLine();
        Push(MakeGlobal(std::move(module), std::move(name)));
        return false;
      }
      case kStackGlobal: {
        const PickleId name = Pop();
        const PickleId module = Pop();
        if (!tree_.IsString(module) || !tree_.IsString(name)) {
          Fail("STACK_GLOBAL needs two strings");
        }
        std::string m = Node(module).text;
        std::string n = Node(name).text;
        Push(MakeGlobal(std::move(m), std::move(n)));
        return false;
      }
      case kReduce: {
        const PickleId args = Pop();
        const PickleId callable = Pop();
        if (Node(args).kind != PickleKind::kTuple) {
          Fail("REDUCE arguments are not a tuple");
        }
        Push(MakeObject(callable, args, kNoPickleId));
        return false;
      }
      case kNewObj: {
        const PickleId args = Pop();
        const PickleId cls = Pop();
        if (Node(args).kind != PickleKind::kTuple) {
          Fail("NEWOBJ arguments are not a tuple");
        }
        Push(MakeObject(cls, args, kNoPickleId));
        return false;
      }
      case kNewObjEx: {
        const PickleId kwargs = Pop();
        const PickleId args = Pop();
        const PickleId cls = Pop();
        if (Node(args).kind != PickleKind::kTuple ||
            Node(kwargs).kind != PickleKind::kDict) {
          Fail("NEWOBJ_EX needs a tuple and a dict");
        }
        Push(MakeObject(cls, args, kwargs));
        return false;
      }
      case kInst: {
        std::string module = ReadLine();
        std::string name = ReadLine();
        std::vector<PickleId> args = PopMark();
        const PickleId cls = MakeGlobal(std::move(module), std::move(name));
        const PickleId tuple =
            MakeSequence(PickleKind::kTuple, std::move(args));
        Push(MakeObject(cls, tuple, kNoPickleId));
        return false;
      }
      case kObj: {
        std::vector<PickleId> items = PopMark();
        if (items.empty()) Fail("OBJ without a class");
        const PickleId cls = items.front();
        items.erase(items.begin());
        const PickleId tuple =
            MakeSequence(PickleKind::kTuple, std::move(items));
        Push(MakeObject(cls, tuple, kNoPickleId));
        return false;
      }
      case kBuild: {
        const PickleId state = Pop();
        PickleNode& t = Node(Top());
        if (t.kind != PickleKind::kObject) {
          Fail(std::string("BUILD on a ") + PickleKindName(t.kind));
        }
        t.state = state;
        return false;
      }
      case kPersId: {
        std::string line = ReadLine();
        const PickleId pid = NewNode(PickleKind::kString);
        Node(pid).text = std::move(line);
        const PickleId id = NewNode(PickleKind::kPersistentId);
        Node(id).args = pid;
        Push(id);
        return false;
      }
      case kBinPersId: {
        const PickleId pid = Pop();
        const PickleId id = NewNode(PickleKind::kPersistentId);
        Node(id).args = pid;
        Push(id);
        return false;
      }
      case kPut:
        Memoize(ParseMemoIndex(ReadLine()), Top());
        return false;
      case kBinPut:
        Memoize(ReadLE(1), Top());
        return false;
      case kLongBinPut:
        Memoize(ReadLE(4), Top());
        return false;
      case kMemoize:
        Memoize(memo_.size(), Top());
        return false;
      case kGet:
        Push(MemoGet(ParseMemoIndex(ReadLine())));
        return false;
      case kBinGet:
        Push(MemoGet(ReadLE(1)));
        return false;
      case kLongBinGet:
        Push(MemoGet(ReadLE(4)));
        return false;
      case kExt1:
      case kExt2:
      case kExt4:
        Fail("extension-registry opcodes (EXT1/2/4) are not supported");
      case kNextBuffer:
        Fail("out-of-band buffers (protocol 5 NEXT_BUFFER) are not supported");
      case kReadOnlyBuffer:
        Top();
        return false;
      default:
        Fail("unknown opcode");
    }
  }

  const uint8_t* data_;
  size_t size_;
  PickleOptions options_;
  size_t base_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  PickleTree tree_;
  std::vector<PickleId> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleId> memo_;
};

PickleTree ParsePickle(const void* data,
                       size_t size,
                       size_t* consumed,
                       const PickleOptions& options,
                       size_t offset_base) {
  if (data == nullptr && size != 0) {
    throw std::invalid_argument("ParsePickle: null data");
  }
  PickleParser parser(
      static_cast<const uint8_t*>(data), size, options, offset_base);
  return parser.Parse(consumed);
}

}  // namespace l2m
