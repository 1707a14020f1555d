#pragma once

// NumPy .npy arrays (format versions 1-3) and the Python values that object
// arrays hold (LoFTR's MegaDepth scene-info files store paths, intrinsics and
// pair lists as pickled object arrays). Parsing is defensive: the header is
// parsed, never evaluated, and pickles are read into an inert tree
// (l2m_core/weights/pickle.h), so a hostile file can only fail to load.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace l2m {

struct NpyArray;

// A Python value as found in numpy object arrays.
struct PyValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kSequence,
    kArray
  };
  Kind kind = Kind::kNone;
  int64_t int_value = 0;  // kBool, kInt.
  double float_value = 0;
  std::string text;                 // kString (UTF-8), kBytes.
  std::vector<PyValue> items;       // kSequence (tuple or list).
  std::shared_ptr<NpyArray> array;  // kArray.

  static PyValue None() { return {}; }
  static PyValue Int(int64_t v);
  static PyValue Float(double v);
  static PyValue String(std::string v);
  static PyValue Sequence(std::vector<PyValue> items);
  static PyValue Array(NpyArray array);

  bool IsNumber() const {
    return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool;
  }
  // Numbers, and arrays of one element. Throws std::runtime_error otherwise.
  double AsDouble() const;
  int64_t AsInt() const;
  // kString/kBytes, or a 0-d/1-element string array.
  std::string AsString() const;
  // Numbers of a sequence (recursively flattened) or of a numeric array.
  std::vector<double> AsDoubles() const;
  // Element `i` of a sequence, or of the first axis of an object array.
  PyValue Item(size_t i) const;
  size_t Size() const;
  std::string Describe() const;
};

struct NpyArray {
  // 'f' float, 'i' signed, 'u' unsigned, 'b' bool, 'U' UTF-32 text,
  // 'S' bytes, 'O' Python objects.
  char kind = 'f';
  int item_size = 8;  // Bytes per element (0 for 'O').
  std::vector<int64_t> shape;
  bool fortran_order = false;
  // Element data, little-endian, in C order (converted on load).
  std::string data;
  // kind 'O' only: the elements in C order.
  std::vector<PyValue> objects;

  int64_t NumElements() const;
  // numeric kinds -> values in C order. Throws for text/object arrays.
  std::vector<double> ToDoubles() const;
  // 'U'/'S' arrays, or object arrays of strings ("" for None).
  std::vector<std::string> ToStrings() const;

  static NpyArray FromDoubles(std::vector<int64_t> shape,
                              const std::vector<double>& values);
  static NpyArray FromInts(std::vector<int64_t> shape,
                           const std::vector<int64_t>& values);
  static NpyArray FromObjects(std::vector<int64_t> shape,
                              std::vector<PyValue> objects);
};

// Parses a whole .npy file held in `bytes`. `name` (file or archive member)
// goes into every error message. Throws std::runtime_error.
NpyArray ParseNpy(const std::string& bytes, const std::string& name);

// Writes the .npy bytes of `array` (format 1.0; object arrays as a protocol-3
// pickle the way np.save writes them, readable by numpy with
// allow_pickle=True). Used by tests to build LoFTR-format files.
std::string EncodeNpyArray(const NpyArray& array);

}  // namespace l2m
