#include "l2m_core/weights/pickle.h"

#include "l2m_core/weights/checkpoint_test_data.h"

#include <gtest/gtest.h>

#include <string>

namespace l2m {
namespace {

PickleTree Parse(const std::string& bytes,
                 size_t* consumed = nullptr,
                 const PickleOptions& options = PickleOptions()) {
  return ParsePickle(bytes.data(), bytes.size(), consumed, options);
}

std::string Bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

template <typename F>
std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Pickle, Scalars) {
  EXPECT_EQ(Parse("I42\n.").node(0).int_value, 42);
  const PickleTree t = Parse("I01\n.");
  EXPECT_EQ(t.node(t.root()).kind, PickleKind::kBool);
  EXPECT_TRUE(t.node(t.root()).bool_value);
  EXPECT_EQ(Parse(Bytes({0x80, 2, 'J', 0xff, 0xff, 0xff, 0xff, '.'}))
                .node(0)
                .int_value,
            -1);
  EXPECT_EQ(Parse(Bytes({0x80, 2, 'M', 0x34, 0x12, '.'})).node(0).int_value,
            0x1234);
  EXPECT_EQ(Parse(Bytes({0x8a, 1, 0xff, '.'})).node(0).int_value, -1);
  EXPECT_EQ(Parse(Bytes({0x8a, 2, 0x00, 0x80, '.'})).node(0).int_value, -32768);
  EXPECT_EQ(Parse(Bytes({0x8a, 0, '.'})).node(0).int_value, 0);
  const PickleTree big =
      Parse(Bytes({0x8a, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, '.'}));
  EXPECT_EQ(big.node(big.root()).kind, PickleKind::kBigInt);
  EXPECT_EQ(big.node(big.root()).text.size(), 10u);
  // BINFLOAT is big-endian: 1.5 = 0x3ff8000000000000.
  EXPECT_EQ(Parse(Bytes({'G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, '.'}))
                .node(0)
                .float_value,
            1.5);
  EXPECT_EQ(Parse("F0.25\n.").node(0).float_value, 0.25);
  const PickleTree s = Parse(Bytes({0x8c, 3, 'a', 'b', 'c', '.'}));
  EXPECT_EQ(s.node(s.root()).text, "abc");
  EXPECT_EQ(Parse("N.").node(0).kind, PickleKind::kNone);
}

TEST(Pickle, ContainersMemoAndGlobals) {
  // {'k': [1, 2], 'g': collections.OrderedDict()} with memo reuse.
  const std::string p =
      Bytes({0x80, 2,   '}', 'q', 0,   '(', 'X', 1,   0, 0, 0, 'k', ']', 'q',
             1,    '(', 'K', 1,   'K', 2,   'e', 'X', 1, 0, 0, 0,   'g', 'c'}) +
      "collections\nOrderedDict\n" +
      Bytes({')', 'R', 'X', 1, 0, 0, 0, 'h', 'h', 1, 'u', '.'});
  const PickleTree t = Parse(p);
  const PickleNode& d = t.node(t.root());
  ASSERT_EQ(d.kind, PickleKind::kDict);
  ASSERT_EQ(d.entries.size(), 3u);
  EXPECT_EQ(t.node(d.entries[0].second).items.size(), 2u);
  EXPECT_TRUE(t.IsObjectOf(d.entries[1].second, "collections", "OrderedDict"));
  EXPECT_EQ(d.entries[2].second, d.entries[0].second);  // Memo: same node.
  EXPECT_EQ(t.Describe(d.entries[1].second), "object collections.OrderedDict");
}

TEST(Pickle, ConsumedAllowsConcatenation) {
  const std::string two = Bytes({0x80, 2, 'K', 7, '.', 0x80, 2, 'K', 9, '.'});
  size_t used = 0;
  const PickleTree a = Parse(two, &used);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(a.node(a.root()).int_value, 7);
  const PickleTree b = ParsePickle(two.data() + used, two.size() - used);
  EXPECT_EQ(b.node(b.root()).int_value, 9);
}

TEST(Pickle, CyclesAndDeepNestingAreInert) {
  // l = []; l.append(l)
  const PickleTree cyc = Parse(Bytes({0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'}));
  const PickleNode& l = cyc.node(cyc.root());
  ASSERT_EQ(l.items.size(), 1u);
  EXPECT_EQ(l.items[0], cyc.root());
  // 200000 nested lists: no recursion anywhere.
  std::string deep(200000, ']');
  deep += std::string(199999, 'a');
  deep += '.';
  EXPECT_EQ(Parse(deep).size(), 200000u);
}

TEST(Pickle, MalformedInputsGiveClearErrors) {
  EXPECT_NE(ErrorOf([] { Parse(""); }).find("empty"), std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({0x80, 6, 'N', '.'}));
            }).find("unsupported pickle protocol 6"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { Parse(Bytes({0xff})); }).find("unknown opcode"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'h', 3, '.'}));
            }).find("memo key 3"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { Parse("."); }).find("empty stack"), std::string::npos);
  EXPECT_NE(ErrorOf([] { Parse("a."); }).find("stack underflow"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(
                  "K\x01"
                  "a.");
            }).find("stack underflow"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'K', 1, 'K', 2, 'a', '.'}));
            }).find("APPEND to a int"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'K', 1, 'K', 2, 'R', '.'}));
            }).find("not a tuple"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'K', 1, 'K', 2, 0x93, '.'}));
            }).find("two strings"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'e', '.'}));
            }).find("no MARK"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'K', 1, 0x97, '.'}));
            }).find("out-of-band"),
            std::string::npos);
  // A length far beyond the data.
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes(
                  {0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a'}));
            }).find("exceeds the limit"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              Parse(Bytes({'X', 0xff, 0xff, 0xff, 0x0f, 'a', '.'}));
            }).find("truncated"),
            std::string::npos);
  PickleOptions tiny;
  tiny.max_nodes = 3;
  EXPECT_NE(ErrorOf([&] {
              Parse(Bytes({']', 'K', 1, 'K', 2, 'K', 3, '.'}), nullptr, tiny);
            }).find("limit"),
            std::string::npos);
}

TEST(Pickle, EveryTruncationOfARealPickleThrows) {
  std::string p;
  const char* hex = test::kLightningPickleHex[2];
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
    p.push_back(static_cast<char>(std::stoi(std::string(hex + i, 2), 0, 16)));
  }
  ASSERT_NO_THROW(Parse(p));
  for (size_t n = 0; n + 1 < p.size(); ++n) {
    const std::string msg = ErrorOf([&] { Parse(p.substr(0, n)); });
    ASSERT_FALSE(msg.empty()) << "prefix " << n << " parsed";
  }
}

}  // namespace
}  // namespace l2m
