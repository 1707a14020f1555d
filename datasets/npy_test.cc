#include "datasets/npy.h"

#include "datasets/npz.h"
#include "tests/test_utils.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

namespace l2m {
namespace {

std::string NpyBytes(const std::string& header, const std::string& data) {
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(Npy, ParsesHeadersNumpyWrites) {
  std::string data(6 * 8, '\0');
  for (int i = 0; i < 6; ++i) {
    const double v = i;
    memcpy(&data[8 * i], &v, 8);
  }
  const NpyArray a = ParseNpy(
      NpyBytes(
          "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }   \n",
          data),
      "a.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.ToDoubles(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  // Fortran order: element (r, c) stored at c*2 + r.
  const NpyArray f = ParseNpy(
      NpyBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2L, 3L), }\n",
               data),
      "f.npy");
  EXPECT_EQ(f.ToDoubles(), (std::vector<double>{0, 2, 4, 1, 3, 5}));
  // Big-endian int32 and a 1-d shape.
  const std::string be("\x00\x00\x00\x07\xff\xff\xff\xfe", 8);
  const NpyArray i = ParseNpy(
      NpyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }\n",
               be),
      "i.npy");
  EXPECT_EQ(i.ToDoubles(), (std::vector<double>{7, -2}));
  // UTF-32 strings.
  std::string u(2 * 3 * 4, '\0');
  const char* words[] = {"ab", "xyz"};
  for (int w = 0; w < 2; ++w)
    for (size_t c = 0; c < strlen(words[w]); ++c)
      u[w * 12 + c * 4] = words[w][c];
  const NpyArray s = ParseNpy(
      NpyBytes("{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }\n",
               u),
      "s.npy");
  EXPECT_EQ(s.ToStrings(), (std::vector<std::string>{"ab", "xyz"}));
}

TEST(Npy, RejectsMalformedFilesNamingThem) {
  const std::string d(16, '\0');
  auto expect_error = [](const std::string& bytes, const std::string& what) {
    try {
      ParseNpy(bytes, "bad.npy");
      FAIL() << "no error for " << what;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos)
          << e.what();
    }
  };
  expect_error("PK\x03\x04 not numpy", "bad magic");
  expect_error(
      NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n",
               d),
      "truncated data");
  expect_error(
      NpyBytes("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }\n",
               d),
      "unsupported dtype");
  expect_error(NpyBytes("{'descr': [('a', '<f8')], 'fortran_order': False, "
                        "'shape': (1,), }\n",
                        d),
               "structured");
  expect_error(NpyBytes("{'descr': '<f8', 'shape': (1,), }\n", d), "lacks");
  expect_error(
      NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,\n", d),
      "malformed");
  expect_error(
      NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }\n",
               d),
      "non-integer");
  expect_error(
      NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999, "
               "99999999, 99999), }\n",
               d),
      "too large");
  expect_error(
      NpyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n",
               "\x80\x03garbage"),
      "");
}

TEST(Npy, ObjectArraysRoundTripThroughPickles) {
  // What LoFTR's scene-info files hold: paths or None, 3x3 arrays, and
  // ((idx0, idx1), overlap, array) tuples.
  std::vector<PyValue> items;
  items.push_back(PyValue::String("Undistorted_SfM/0015/images/a.jpg"));
  items.push_back(PyValue::None());
  items.push_back(PyValue::Array(
      NpyArray::FromDoubles({3, 3}, {1, 0, 2, 0, 1, 3, 0, 0, 1})));
  items.push_back(PyValue::Sequence(
      {PyValue::Sequence({PyValue::Int(4), PyValue::Int(7)}),
       PyValue::Float(0.25),
       PyValue::Array(NpyArray::FromInts({1, 2}, {10, 20}))}));
  items.push_back(PyValue::Int(int64_t{1} << 40));
  const NpyArray array = NpyArray::FromObjects({5}, items);
  const NpyArray back = ParseNpy(EncodeNpyArray(array), "o.npy");
  ASSERT_EQ(back.kind, 'O');
  ASSERT_EQ(back.objects.size(), 5u);
  EXPECT_EQ(back.objects[0].AsString(), "Undistorted_SfM/0015/images/a.jpg");
  EXPECT_EQ(back.objects[1].kind, PyValue::Kind::kNone);
  EXPECT_EQ(back.objects[2].AsDoubles(),
            (std::vector<double>{1, 0, 2, 0, 1, 3, 0, 0, 1}));
  EXPECT_EQ(back.objects[3].Item(0).AsDoubles(), (std::vector<double>{4, 7}));
  EXPECT_DOUBLE_EQ(back.objects[3].Item(1).AsDouble(), 0.25);
  EXPECT_EQ(back.objects[3].Item(2).AsDoubles(), (std::vector<double>{10, 20}));
  EXPECT_EQ(back.objects[4].AsInt(), int64_t{1} << 40);
}

TEST(Npz, RoundTripAndMissingKeys) {
  test::TempDir dir;
  const std::string path = dir.File("x.npz");
  WriteNpzArchive(path,
                  {{"a", NpyArray::FromDoubles({2}, {1.5, -2})},
                   {"name", NpyArray::FromInts({1, 4}, {707, 0, 15, 585})}});
  const auto arrays = ReadNpzArchive(path);
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_EQ(NpzArray(arrays, "a", path).ToDoubles(),
            (std::vector<double>{1.5, -2}));
  EXPECT_EQ(NpzArray(arrays, "name", path).shape, (std::vector<int64_t>{1, 4}));
  try {
    NpzArray(arrays, "rel_pose", path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("found: a, name"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ReadNpzArchive(dir.File("missing.npz")), std::runtime_error);
  {
    FILE* f = fopen(dir.File("not_zip.npz").c_str(), "wb");
    fputs("hello", f);
    fclose(f);
  }
  try {
    ReadNpzArchive(dir.File("not_zip.npz"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not_zip.npz"), std::string::npos);
  }
}

}  // namespace
}  // namespace l2m
