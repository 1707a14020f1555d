#include "l2m_core/weights/key_list.h"

#include "tests/test_utils.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

namespace l2m {
namespace {

TEST(KeyList, ReadAndCompare) {
  test::TempDir dir;
  const std::string path = dir.File("keys.txt");
  {
    std::ofstream out(path);
    out << "# comment\n"
        << "a.weight\tfloat32\t4,3\n"
        << "a.bias\tfloat32\t4\n"
        << "bn.num_batches_tracked\tint64\t\n"
        << "gone\tfloat32\t1\n";
  }
  const std::vector<TensorSpec> expected = ReadKeyList(path);
  ASSERT_EQ(expected.size(), 4u);
  EXPECT_EQ(expected[0].shape, (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(expected[2].shape.empty());
  EXPECT_EQ(expected[2].dtype, "int64");

  StateDict sd;
  sd.tensors = {{"a.weight", at::zeros({4, 3})},
                {"a.bias", at::zeros({5})},
                {"bn.num_batches_tracked", at::zeros({}, at::kInt)},
                {"extra", at::zeros({1})}};
  const KeyComparison c = CompareKeys(expected, SpecsOf(sd));
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.matched, 1u);
  EXPECT_EQ(c.missing, std::vector<std::string>{"gone"});
  EXPECT_EQ(c.unexpected, std::vector<std::string>{"extra"});
  ASSERT_EQ(c.shape_mismatch.size(), 1u);
  EXPECT_EQ(c.shape_mismatch[0], "a.bias: expected [4], got [5]");
  ASSERT_EQ(c.dtype_mismatch.size(), 1u);
  EXPECT_EQ(c.expected_elements, 12 + 4 + 1 + 1);
  const std::string report = c.ToString(1);
  EXPECT_NE(report.find("keys differ: 1 of 4"), std::string::npos) << report;
  EXPECT_NE(report.find("missing (1):\n    gone"), std::string::npos) << report;

  const KeyComparison same = CompareKeys(expected, expected);
  EXPECT_TRUE(same.ok());
  EXPECT_EQ(same.matched, 4u);
}

TEST(KeyList, BadLinesNameTheLine) {
  test::TempDir dir;
  const std::string path = dir.File("bad.txt");
  {
    std::ofstream out(path);
    out << "a\tfloat32\t4\nb\tfloat32\t4,x\n";
  }
  try {
    ReadKeyList(path);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:2"), std::string::npos)
        << e.what();
  }
}

TEST(KeyList, FullSizeKeyListsAreConsistent) {
  L2M_REQUIRE_SHARED(shared);
  const std::string dir = shared + "/fixtures/roma_parity/";
  const auto matcher = ReadKeyList(dir + "keys_matcher_full.txt");
  EXPECT_EQ(matcher.size(), 603u);
  const auto vitl = ReadKeyList(dir + "keys_dinov2_vitl14.txt");
  EXPECT_EQ(vitl.size(), 343u);
  const auto vitb = ReadKeyList(dir + "keys_dinov2_vitb14.txt");
  EXPECT_EQ(vitb.size(), 175u);
  // MANIFEST.md counts float32 elements (BN num_batches_tracked are int64).
  const auto float_elements = [](const std::vector<TensorSpec>& specs) {
    std::vector<TensorSpec> floats;
    for (const TensorSpec& s : specs) {
      if (s.dtype == "float32") floats.push_back(s);
    }
    return CompareKeys(floats, floats).expected_elements;
  };
  EXPECT_EQ(float_elements(matcher), 111356472);
  EXPECT_EQ(float_elements(vitl), 304368640);
  EXPECT_EQ(float_elements(vitb), 86580480);
}

}  // namespace
}  // namespace l2m
