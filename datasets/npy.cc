#include "datasets/npy.h"

#include "l2m_core/weights/pickle.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace {

[[noreturn]] void Fail(const std::string& name, const std::string& what) {
  throw std::runtime_error(name + ": " + what);
}

// A tiny reader for the Python literal of the .npy header, e.g.
// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }.
// Only dicts, tuples, lists, strings, integers, True/False/None exist there.
struct Literal {
  enum class Kind { kNone, kBool, kInt, kString, kTuple, kDict };
  Kind kind = Kind::kNone;
  int64_t int_value = 0;
  std::string text;
  std::vector<Literal> items;
  std::vector<std::pair<std::string, Literal>> entries;
};

class LiteralParser {
 public:
  LiteralParser(const std::string& text, const std::string& name)
      : text_(text), name_(name) {}

  Literal Parse() {
    Literal value = ParseValue(0);
    SkipSpace();
    if (pos_ != text_.size()) Error("trailing characters");
    return value;
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t'))
      ++pos_;
  }
  [[noreturn]] void Error(const std::string& what) {
    Fail(name_,
         "malformed .npy header (" + what + " at character " +
             std::to_string(pos_) + "): " + text_.substr(0, 200));
  }
  Literal ParseValue(int depth) {
    if (depth > 8) Error("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) Error("unexpected end");
    const char c = text_[pos_];
    Literal value;
    if (c == '{' || c == '(' || c == '[') {
      const char close = c == '{' ? '}' : (c == '(' ? ')' : ']');
      value.kind = c == '{' ? Literal::Kind::kDict : Literal::Kind::kTuple;
      ++pos_;
      while (true) {
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == close) {
          ++pos_;
          return value;
        }
        Literal item = ParseValue(depth + 1);
        if (value.kind == Literal::Kind::kDict) {
          if (item.kind != Literal::Kind::kString)
            Error("dict key not a string");
          SkipSpace();
          if (pos_ >= text_.size() || text_[pos_] != ':') Error("expected ':'");
          ++pos_;
          value.entries.emplace_back(item.text, ParseValue(depth + 1));
        } else {
          value.items.push_back(std::move(item));
        }
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
        } else if (pos_ >= text_.size() || text_[pos_] != close) {
          Error("expected ',' or closing bracket");
        }
      }
    }
    if (c == '\'' || c == '"') {
      ++pos_;
      value.kind = Literal::Kind::kString;
      while (pos_ < text_.size() && text_[pos_] != c)
        value.text += text_[pos_++];
      if (pos_ >= text_.size()) Error("unterminated string");
      ++pos_;
      return value;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t end = pos_ + 1;
      while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9')
        ++end;
      if (end - pos_ > 18) Error("integer too large");
      value.kind = Literal::Kind::kInt;
      value.int_value = std::stoll(text_.substr(pos_, end - pos_));
      pos_ = end;
      // Python 2 era headers write shapes as (3L, 4L).
      if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
      return value;
    }
    for (const char* word : {"True", "False", "None"}) {
      if (text_.compare(pos_, strlen(word), word) == 0) {
        pos_ += strlen(word);
        value.kind =
            word[0] == 'N' ? Literal::Kind::kNone : Literal::Kind::kBool;
        value.int_value = word[0] == 'T';
        return value;
      }
    }
    Error("unexpected character");
  }

  const std::string& text_;
  const std::string& name_;
  size_t pos_ = 0;
};

struct DType {
  char kind = 'f';
  int item_size = 8;
  bool big_endian = false;
};

// '<f8', '|u1', '>i4', '<U12' (12 characters of UTF-32), '|S5', '|O'.
DType ParseDescr(const std::string& descr, const std::string& name) {
  if (descr.size() < 2) Fail(name, "unsupported dtype '" + descr + "'");
  DType d;
  size_t pos = 0;
  if (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' ||
      descr[0] == '=') {
    d.big_endian = descr[0] == '>';
    pos = 1;
  }
  d.kind = descr[pos];
  const std::string digits = descr.substr(pos + 1);
  if (d.kind == 'O') {
    d.item_size = 0;
    return d;
  }
  if (digits.empty() || digits.size() > 6 ||
      !std::all_of(digits.begin(), digits.end(), ::isdigit))
    Fail(name, "unsupported dtype '" + descr + "'");
  d.item_size = std::stoi(digits);
  switch (d.kind) {
    case 'f':
      if (d.item_size != 4 && d.item_size != 8) break;
      return d;
    case 'i':
    case 'u':
      if (d.item_size != 1 && d.item_size != 2 && d.item_size != 4 &&
          d.item_size != 8)
        break;
      return d;
    case 'b':
      if (d.item_size != 1) break;
      return d;
    case 'U':
      d.item_size *= 4;
      return d;
    case 'S':
      return d;
    default:
      break;
  }
  Fail(name,
       "unsupported dtype '" + descr +
           "' (supported: float32/64, (u)int8-64, bool, str, bytes, object)");
}

// Element-wise byte swap of big-endian data to little-endian.
void SwapToLittle(std::string* data, int unit) {
  if (unit <= 1) return;
  for (size_t i = 0; i + unit <= data->size(); i += unit)
    std::reverse(data->begin() + i, data->begin() + i + unit);
}

// Fortran-order data -> C order (element-wise copy).
std::string FortranToC(const std::string& data,
                       const std::vector<int64_t>& shape,
                       int item_size) {
  const size_t nd = shape.size();
  if (nd < 2 || item_size == 0) return data;
  std::string out(data.size(), '\0');
  const int64_t n = static_cast<int64_t>(data.size()) / item_size;
  std::vector<int64_t> index(nd, 0);
  for (int64_t c = 0; c < n; ++c) {
    // `index` is the multi-index of C-order element c.
    int64_t f = 0, stride = 1;
    for (size_t d = 0; d < nd; ++d) {
      f += index[d] * stride;
      stride *= shape[d];
    }
    memcpy(&out[c * item_size], &data[f * item_size], item_size);
    for (size_t d = nd; d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

int64_t CheckedProduct(const std::vector<int64_t>& shape,
                       const std::string& name) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0 || (s > 0 && n > (int64_t{1} << 40) / s))
      Fail(name, "invalid or too large shape");
    n *= s;
  }
  return n;
}

// ---- Python objects from the pickle tree ---------------------------------

class PyConverter {
 public:
  PyConverter(const PickleTree& tree, const std::string& name)
      : tree_(tree), name_(name) {}

  PyValue Convert(PickleId id, int depth) {
    if (depth > 32) Fail(name_, "pickled object nested too deeply");
    const PickleNode& n = tree_.node(id);
    switch (n.kind) {
      case PickleKind::kNone:
        return PyValue::None();
      case PickleKind::kBool: {
        PyValue v = PyValue::Int(n.bool_value);
        v.kind = PyValue::Kind::kBool;
        return v;
      }
      case PickleKind::kInt:
        return PyValue::Int(n.int_value);
      case PickleKind::kFloat:
        return PyValue::Float(n.float_value);
      case PickleKind::kString:
        return PyValue::String(n.text);
      case PickleKind::kBytes: {
        PyValue v;
        v.kind = PyValue::Kind::kBytes;
        v.text = n.text;
        return v;
      }
      case PickleKind::kTuple:
      case PickleKind::kList: {
        std::vector<PyValue> items;
        for (PickleId c : n.items) items.push_back(Convert(c, depth + 1));
        return PyValue::Sequence(std::move(items));
      }
      case PickleKind::kObject:
        return ConvertObject(id, n, depth);
      default:
        break;
    }
    Fail(name_, "unsupported pickled value: " + tree_.Describe(id));
  }

 private:
  bool IsNumpy(PickleId id, const char* function) const {
    return tree_.IsObjectOf(id, "numpy.core.multiarray", function) ||
           tree_.IsObjectOf(id, "numpy._core.multiarray", function);
  }

  const PickleNode& Tuple(PickleId id, size_t min_size, const char* what) {
    const PickleNode& n = tree_.node(id);
    if (n.kind != PickleKind::kTuple || n.items.size() < min_size)
      Fail(name_, std::string("pickled ") + what + " is malformed");
    return n;
  }

  DType ConvertDType(PickleId id) {
    if (!tree_.IsObjectOf(id, "numpy", "dtype"))
      Fail(name_, "pickled array without a numpy dtype: " + tree_.Describe(id));
    const PickleNode& n = tree_.node(id);
    const PickleNode& args = Tuple(n.args, 1, "dtype");
    if (!tree_.IsString(args.items[0]))
      Fail(name_, "pickled dtype is malformed");
    const std::string code =
        tree_.node(args.items[0]).text;  // 'f8', 'U40', 'O8'
    std::string order = "|";
    if (n.state != kNoPickleId) {
      const PickleNode& state = Tuple(n.state, 2, "dtype state");
      if (tree_.IsString(state.items[1]))
        order = tree_.node(state.items[1]).text;
    }
    if (!code.empty() && code[0] == 'O') return DType{'O', 0, false};
    // The pickled code counts bytes for 'U' ('U40' = 10 characters).
    if (!code.empty() && code[0] == 'U') {
      DType d = ParseDescr("<U1", name_);
      d.item_size = std::stoi(code.substr(1));
      d.big_endian = order == ">";
      return d;
    }
    DType d = ParseDescr(order + code, name_);
    return d;
  }

  PyValue ConvertObject(PickleId id, const PickleNode& n, int depth) {
    if (IsNumpy(id, "_reconstruct")) {
      // ndarray.__reduce__: state = (version, shape, dtype, fortran, data).
      const PickleNode& state = Tuple(n.state, 5, "ndarray state");
      const size_t base = state.items.size() - 4;
      NpyArray array;
      const PickleNode& shape = tree_.node(state.items[base]);
      if (shape.kind != PickleKind::kTuple)
        Fail(name_, "pickled shape is malformed");
      for (PickleId s : shape.items) {
        const PickleNode& dim = tree_.node(s);
        if (dim.kind != PickleKind::kInt)
          Fail(name_, "pickled shape is malformed");
        array.shape.push_back(dim.int_value);
      }
      const DType dtype = ConvertDType(state.items[base + 1]);
      array.kind = dtype.kind;
      array.item_size = dtype.item_size;
      const PickleNode& fortran = tree_.node(state.items[base + 2]);
      array.fortran_order =
          fortran.kind == PickleKind::kBool && fortran.bool_value;
      const int64_t count = CheckedProduct(array.shape, name_);
      const PickleNode& data = tree_.node(state.items[base + 3]);
      if (dtype.kind == 'O') {
        if (data.kind != PickleKind::kList ||
            static_cast<int64_t>(data.items.size()) != count)
          Fail(name_, "pickled object array has the wrong number of elements");
        for (PickleId c : data.items)
          array.objects.push_back(Convert(c, depth + 1));
        // Object arrays are pickled in C order unless fortran; reorder
        // through indices.
        if (array.fortran_order && array.shape.size() > 1) {
          std::vector<PyValue> c_order(array.objects.size());
          std::string idx(count * 8, '\0');
          for (int64_t i = 0; i < count; ++i) memcpy(&idx[i * 8], &i, 8);
          const std::string reordered = FortranToC(idx, array.shape, 8);
          for (int64_t i = 0; i < count; ++i) {
            int64_t f;
            memcpy(&f, &reordered[i * 8], 8);
            c_order[i] = array.objects[f];
          }
          array.objects = std::move(c_order);
        }
      } else {
        if (data.kind != PickleKind::kBytes && data.kind != PickleKind::kString)
          Fail(name_, "pickled array data is not bytes");
        if (static_cast<int64_t>(data.text.size()) != count * dtype.item_size)
          Fail(name_, "pickled array data has the wrong size");
        array.data = data.text;
        if (dtype.big_endian)
          SwapToLittle(&array.data, dtype.kind == 'U' ? 4 : dtype.item_size);
        if (array.fortran_order)
          array.data = FortranToC(array.data, array.shape, dtype.item_size);
      }
      array.fortran_order = false;
      return PyValue::Array(std::move(array));
    }
    if (IsNumpy(id, "scalar")) {
      // numpy scalar: scalar(dtype, raw bytes).
      const PickleNode& args = Tuple(n.args, 2, "numpy scalar");
      const DType dtype = ConvertDType(args.items[0]);
      const PickleNode& raw = tree_.node(args.items[1]);
      if (dtype.kind == 'O' ||
          (raw.kind != PickleKind::kBytes && raw.kind != PickleKind::kString) ||
          static_cast<int>(raw.text.size()) != dtype.item_size)
        Fail(name_, "pickled numpy scalar is malformed");
      NpyArray array;
      array.kind = dtype.kind;
      array.item_size = dtype.item_size;
      array.data = raw.text;
      if (dtype.big_endian) SwapToLittle(&array.data, dtype.item_size);
      if (dtype.kind == 'U' || dtype.kind == 'S')
        return PyValue::String(array.ToStrings()[0]);
      const double v = array.ToDoubles()[0];
      return dtype.kind == 'f' ? PyValue::Float(v)
                               : PyValue::Int(static_cast<int64_t>(v));
    }
    if (tree_.IsObjectOf(id, "_codecs", "encode")) {
      // Protocol-2 pickles of bytes: _codecs.encode(text, 'latin1').
      const PickleNode& args = Tuple(n.args, 1, "bytes");
      if (!tree_.IsString(args.items[0]))
        Fail(name_, "pickled bytes are malformed");
      PyValue v;
      v.kind = PyValue::Kind::kBytes;
      const std::string& utf8 = tree_.node(args.items[0]).text;
      for (size_t i = 0; i < utf8.size(); ++i) {
        const unsigned char c = utf8[i];
        if (c < 0x80) {
          v.text += static_cast<char>(c);
        } else if (i + 1 < utf8.size()) {
          v.text += static_cast<char>(((c & 0x1f) << 6) | (utf8[++i] & 0x3f));
        }
      }
      return v;
    }
    Fail(name_, "unsupported pickled object: " + tree_.Describe(id));
  }

  const PickleTree& tree_;
  const std::string& name_;
};

// ---- pickle writer (tests build LoFTR-format object arrays) --------------

class PickleWriter {
 public:
  std::string Finish(const NpyArray& array) {
    out_ = "\x80\x03";
    WriteArray(array);
    out_ += '.';
    return out_;
  }

 private:
  void Global(const std::string& module, const std::string& name) {
    out_ += 'c' + module + '\n' + name + '\n';
  }
  void Int(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      const int32_t i = static_cast<int32_t>(v);
      out_ += 'J';
      out_.append(reinterpret_cast<const char*>(&i), 4);
    } else {
      out_ += '\x8a';
      out_ += '\x08';
      out_.append(reinterpret_cast<const char*>(&v), 8);
    }
  }
  void Float(double v) {
    out_ += 'G';
    char b[8];
    memcpy(b, &v, 8);
    for (int i = 7; i >= 0; --i) out_ += b[i];  // Big-endian.
  }
  void Unicode(const std::string& s) {
    out_ += 'X';
    const uint32_t n = static_cast<uint32_t>(s.size());
    out_.append(reinterpret_cast<const char*>(&n), 4);
    out_ += s;
  }
  void Bytes(const std::string& s) {
    out_ += 'B';
    const uint32_t n = static_cast<uint32_t>(s.size());
    out_.append(reinterpret_cast<const char*>(&n), 4);
    out_ += s;
  }
  void DTypeOf(const NpyArray& a) {
    Global("numpy", "dtype");
    std::string code;
    if (a.kind == 'O') {
      code = "O8";
    } else {
      code = std::string(1, a.kind) + std::to_string(a.item_size);
    }
    out_ += '(';
    Unicode(code);
    out_ += "\x89\x88t";  // False, True.
    out_ += 'R';
    out_ += '(';
    Int(3);
    Unicode(a.kind == 'O' || a.item_size == 1 ? "|" : "<");
    out_ += "NNN";
    Int(a.kind == 'U' ? a.item_size : -1);
    Int(a.kind == 'U' ? 4 : -1);
    Int(a.kind == 'O' ? 63 : 0);
    out_ += "tb";
  }
  void WriteValue(const PyValue& v) {
    switch (v.kind) {
      case PyValue::Kind::kNone:
        out_ += 'N';
        return;
      case PyValue::Kind::kBool:
        out_ += v.int_value ? '\x88' : '\x89';
        return;
      case PyValue::Kind::kInt:
        Int(v.int_value);
        return;
      case PyValue::Kind::kFloat:
        Float(v.float_value);
        return;
      case PyValue::Kind::kString:
        Unicode(v.text);
        return;
      case PyValue::Kind::kBytes:
        Bytes(v.text);
        return;
      case PyValue::Kind::kSequence:
        out_ += '(';
        for (const PyValue& item : v.items) WriteValue(item);
        out_ += 't';
        return;
      case PyValue::Kind::kArray:
        WriteArray(*v.array);
        return;
    }
  }
  void WriteArray(const NpyArray& a) {
    Global("numpy.core.multiarray", "_reconstruct");
    out_ += '(';
    Global("numpy", "ndarray");
    out_ += '(';
    Int(0);
    out_ += 't';
    out_ +=
        "C\x01"
        "b";
    out_ += "tR(";
    Int(1);
    out_ += '(';
    for (int64_t s : a.shape) Int(s);
    out_ += 't';
    DTypeOf(a);
    out_ += '\x89';
    if (a.kind == 'O') {
      out_ += "](";
      for (const PyValue& v : a.objects) WriteValue(v);
      out_ += 'e';
    } else {
      Bytes(a.data);
    }
    out_ += "tb";
  }

  std::string out_;
};

}  // namespace

// ---- PyValue ---------------------------------------------------------------

PyValue PyValue::Int(int64_t v) {
  PyValue p;
  p.kind = Kind::kInt;
  p.int_value = v;
  return p;
}
PyValue PyValue::Float(double v) {
  PyValue p;
  p.kind = Kind::kFloat;
  p.float_value = v;
  return p;
}
PyValue PyValue::String(std::string v) {
  PyValue p;
  p.kind = Kind::kString;
  p.text = std::move(v);
  return p;
}
PyValue PyValue::Sequence(std::vector<PyValue> items) {
  PyValue p;
  p.kind = Kind::kSequence;
  p.items = std::move(items);
  return p;
}
PyValue PyValue::Array(NpyArray array) {
  PyValue p;
  p.kind = Kind::kArray;
  p.array = std::make_shared<NpyArray>(std::move(array));
  return p;
}

std::string PyValue::Describe() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int " + std::to_string(int_value);
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str '" + text.substr(0, 40) + "'";
    case Kind::kBytes:
      return "bytes";
    case Kind::kSequence:
      return "sequence of " + std::to_string(items.size());
    case Kind::kArray: {
      std::string s = std::string("array ") + array->kind + " (";
      for (int64_t d : array->shape) s += std::to_string(d) + ",";
      return s + ")";
    }
  }
  return "?";
}

double PyValue::AsDouble() const {
  if (kind == Kind::kFloat) return float_value;
  if (kind == Kind::kInt || kind == Kind::kBool)
    return static_cast<double>(int_value);
  if (kind == Kind::kArray && array->NumElements() == 1) {
    if (array->kind == 'O') return array->objects[0].AsDouble();
    return array->ToDoubles()[0];
  }
  throw std::runtime_error("expected a number, found " + Describe());
}

int64_t PyValue::AsInt() const {
  if (kind == Kind::kInt || kind == Kind::kBool) return int_value;
  const double v = AsDouble();
  if (v != static_cast<double>(static_cast<int64_t>(v)))
    throw std::runtime_error("expected an integer, found " + Describe());
  return static_cast<int64_t>(v);
}

std::string PyValue::AsString() const {
  if (kind == Kind::kString || kind == Kind::kBytes) return text;
  if (kind == Kind::kArray && array->NumElements() == 1 && array->kind != 'f')
    return array->ToStrings()[0];
  throw std::runtime_error("expected a string, found " + Describe());
}

std::vector<double> PyValue::AsDoubles() const {
  if (IsNumber()) return {AsDouble()};
  std::vector<double> out;
  if (kind == Kind::kSequence) {
    for (const PyValue& item : items) {
      const std::vector<double> v = item.AsDoubles();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  if (kind == Kind::kArray) {
    if (array->kind != 'O') return array->ToDoubles();
    for (const PyValue& item : array->objects) {
      const std::vector<double> v = item.AsDoubles();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  throw std::runtime_error("expected numbers, found " + Describe());
}

size_t PyValue::Size() const {
  if (kind == Kind::kSequence) return items.size();
  if (kind == Kind::kArray) return array->shape.empty() ? 1 : array->shape[0];
  return 0;
}

PyValue PyValue::Item(size_t i) const {
  if (kind == Kind::kSequence && i < items.size()) return items[i];
  if (kind == Kind::kArray && !array->shape.empty() &&
      static_cast<int64_t>(i) < array->shape[0]) {
    const int64_t row = array->NumElements() / array->shape[0];
    NpyArray sub;
    sub.kind = array->kind;
    sub.item_size = array->item_size;
    sub.shape.assign(array->shape.begin() + 1, array->shape.end());
    if (array->kind == 'O') {
      if (sub.shape.empty()) return array->objects[i];
      sub.objects.assign(array->objects.begin() + i * row,
                         array->objects.begin() + (i + 1) * row);
    } else {
      sub.data = array->data.substr(i * row * array->item_size,
                                    row * array->item_size);
    }
    return Array(std::move(sub));
  }
  throw std::runtime_error("index " + std::to_string(i) + " out of range of " +
                           Describe());
}

// ---- NpyArray --------------------------------------------------------------

int64_t NpyArray::NumElements() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::vector<double> NpyArray::ToDoubles() const {
  const int64_t n =
      kind == 'O' ? 0
                  : static_cast<int64_t>(data.size()) / std::max(1, item_size);
  std::vector<double> out(n);
  const char* p = data.data();
  for (int64_t i = 0; i < n; ++i, p += item_size) {
    switch (kind) {
      case 'f':
        if (item_size == 4) {
          float f;
          memcpy(&f, p, 4);
          out[i] = f;
        } else {
          memcpy(&out[i], p, 8);
        }
        break;
      case 'i': {
        int64_t v = 0;
        memcpy(&v, p, item_size);
        const int shift = 64 - 8 * item_size;  // Sign-extend.
        out[i] = static_cast<double>(shift ? (v << shift) >> shift : v);
        break;
      }
      case 'u':
      case 'b': {
        uint64_t v = 0;
        memcpy(&v, p, item_size);
        out[i] = static_cast<double>(v);
        break;
      }
      default:
        throw std::runtime_error(std::string("array of kind '") + kind +
                                 "' is not numeric");
    }
  }
  return out;
}

std::vector<std::string> NpyArray::ToStrings() const {
  std::vector<std::string> out;
  if (kind == 'O') {
    for (const PyValue& v : objects)
      out.push_back(v.kind == PyValue::Kind::kNone ? "" : v.AsString());
    return out;
  }
  if (kind != 'U' && kind != 'S')
    throw std::runtime_error(std::string("array of kind '") + kind +
                             "' is not text");
  for (size_t i = 0; i + item_size <= data.size() && item_size > 0;
       i += item_size) {
    std::string s;
    if (kind == 'S') {
      s = data.substr(i, item_size);
      s = s.substr(0, s.find('\0'));
    } else {
      for (int c = 0; c < item_size; c += 4) {
        uint32_t cp;
        memcpy(&cp, &data[i + c], 4);
        if (cp == 0) break;
        // UTF-32 -> UTF-8.
        if (cp < 0x80) {
          s += static_cast<char>(cp);
        } else if (cp < 0x800) {
          s += static_cast<char>(0xc0 | (cp >> 6));
          s += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
          s += static_cast<char>(0xe0 | (cp >> 12));
          s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
          s += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
          s += static_cast<char>(0xf0 | (cp >> 18));
          s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
          s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
          s += static_cast<char>(0x80 | (cp & 0x3f));
        }
      }
    }
    out.push_back(s);
  }
  return out;
}

NpyArray NpyArray::FromDoubles(std::vector<int64_t> shape,
                               const std::vector<double>& values) {
  NpyArray a;
  a.kind = 'f';
  a.item_size = 8;
  a.shape = std::move(shape);
  a.data.assign(reinterpret_cast<const char*>(values.data()),
                values.size() * 8);
  return a;
}

NpyArray NpyArray::FromInts(std::vector<int64_t> shape,
                            const std::vector<int64_t>& values) {
  NpyArray a;
  a.kind = 'i';
  a.item_size = 8;
  a.shape = std::move(shape);
  a.data.assign(reinterpret_cast<const char*>(values.data()),
                values.size() * 8);
  return a;
}

NpyArray NpyArray::FromObjects(std::vector<int64_t> shape,
                               std::vector<PyValue> objects) {
  NpyArray a;
  a.kind = 'O';
  a.item_size = 0;
  a.shape = std::move(shape);
  a.objects = std::move(objects);
  return a;
}

NpyArray ParseNpy(const std::string& bytes, const std::string& name) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    Fail(name, "not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3)
    Fail(name, "unsupported .npy format version " + std::to_string(major));
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) |
                 (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else {
    if (bytes.size() < 12) Fail(name, "truncated .npy header");
    uint32_t n;
    memcpy(&n, &bytes[8], 4);
    header_len = n;
    offset = 12;
  }
  if (header_len > 1 << 20 || offset + header_len > bytes.size())
    Fail(name, "truncated or oversized .npy header");
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  std::string trimmed = header;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ' ||
                              trimmed.back() == '\0'))
    trimmed.pop_back();
  const Literal dict = LiteralParser(trimmed, name).Parse();
  if (dict.kind != Literal::Kind::kDict)
    Fail(name, ".npy header is not a dict");
  const Literal* descr = nullptr;
  const Literal* fortran = nullptr;
  const Literal* shape = nullptr;
  for (const auto& [key, value] : dict.entries) {
    if (key == "descr") descr = &value;
    if (key == "fortran_order") fortran = &value;
    if (key == "shape") shape = &value;
  }
  if (!descr || !fortran || !shape)
    Fail(name, ".npy header lacks descr, fortran_order or shape");
  if (descr->kind != Literal::Kind::kString)
    Fail(name, "structured dtypes are not supported");
  if (shape->kind != Literal::Kind::kTuple)
    Fail(name, ".npy shape is not a tuple");

  const DType dtype = ParseDescr(descr->text, name);
  NpyArray array;
  array.kind = dtype.kind;
  array.item_size = dtype.item_size;
  for (const Literal& d : shape->items) {
    if (d.kind != Literal::Kind::kInt || d.int_value < 0)
      Fail(name, ".npy shape holds a non-integer");
    array.shape.push_back(d.int_value);
  }
  const int64_t count = CheckedProduct(array.shape, name);
  const bool fortran_order = fortran->int_value != 0;

  if (dtype.kind == 'O') {
    size_t consumed = 0;
    PyValue value;
    try {
      const PickleTree tree = ParsePickle(bytes.data() + offset,
                                          bytes.size() - offset,
                                          &consumed,
                                          PickleOptions(),
                                          offset);
      value = PyConverter(tree, name).Convert(tree.root(), 0);
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      if (what.rfind(name, 0) == 0) throw;
      Fail(name, "object array pickle: " + what);
    }
    if (value.kind != PyValue::Kind::kArray || value.array->kind != 'O' ||
        value.array->NumElements() != count)
      Fail(name, "object array pickle does not match the header shape");
    array.objects = std::move(value.array->objects);
    return array;
  }
  const size_t expected = static_cast<size_t>(count) * dtype.item_size;
  if (bytes.size() - offset < expected)
    Fail(name,
         "truncated data: expected " + std::to_string(expected) +
             " bytes, found " + std::to_string(bytes.size() - offset));
  array.data = bytes.substr(offset, expected);
  if (dtype.big_endian)
    SwapToLittle(&array.data, dtype.kind == 'U' ? 4 : dtype.item_size);
  if (fortran_order)
    array.data = FortranToC(array.data, array.shape, dtype.item_size);
  return array;
}

std::string EncodeNpyArray(const NpyArray& array) {
  std::string descr;
  if (array.kind == 'O') {
    descr = "|O";
  } else if (array.kind == 'U') {
    descr = "<U" + std::to_string(array.item_size / 4);
  } else {
    descr = std::string(array.item_size == 1 ? "|" : "<") + array.kind +
            std::to_string(array.item_size);
  }
  std::string shape = "(";
  for (int64_t s : array.shape) shape += std::to_string(s) + ", ";
  if (array.shape.size() > 1)
    shape.resize(shape.size() - 1), shape.back() = ')';
  else
    shape += ")";
  if (array.shape.size() == 1)
    shape = "(" + std::to_string(array.shape[0]) + ",)";
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts on a 64-byte boundary, as numpy does.
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  if (array.kind == 'O') {
    out += PickleWriter().Finish(array);
  } else {
    out += array.data;
  }
  return out;
}

}  // namespace l2m
