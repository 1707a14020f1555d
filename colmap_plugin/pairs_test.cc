#include "colmap_plugin/pairs.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>

#include <fstream>

namespace l2m {
namespace {

std::vector<DbImage> Images(int n) {
  std::vector<DbImage> images;
  // Ids in reverse name order, so name order and id order differ.
  for (int i = 0; i < n; ++i) {
    images.push_back(
        {static_cast<image_t>(n - i), "img" + std::to_string(i) + ".jpg", 1});
  }
  return images;
}

TEST(Pairs, Exhaustive) {
  const auto pairs = ExhaustivePairs(Images(5));
  EXPECT_EQ(pairs.size(), 10u);
  for (const auto& p : pairs) EXPECT_LT(p.first, p.second);
  EXPECT_TRUE(std::is_sorted(pairs.begin(), pairs.end()));
}

TEST(Pairs, SequentialFollowsNameOrder) {
  const auto images = Images(6);
  const auto pairs = SequentialPairs(images, 2);
  // 5 neighbours at distance 1 + 4 at distance 2.
  EXPECT_EQ(pairs.size(), 9u);
  // img0 (id 6) pairs with img1 (id 5) and img2 (id 4), never with img3 (id 3).
  EXPECT_NE(std::find(pairs.begin(), pairs.end(), ImagePair(5, 6)),
            pairs.end());
  EXPECT_NE(std::find(pairs.begin(), pairs.end(), ImagePair(4, 6)),
            pairs.end());
  EXPECT_EQ(std::find(pairs.begin(), pairs.end(), ImagePair(3, 6)),
            pairs.end());
  EXPECT_EQ(SequentialPairs(images, 100).size(), 15u);
  EXPECT_THROW(SequentialPairs(images, 0), std::invalid_argument);
}

TEST(Pairs, FromFileWithCommentsDuplicatesAndErrors) {
  test::TempDir dir;
  const auto images = Images(4);
  std::ofstream(dir.File("pairs.txt"))
      << "# hloc pairs\n\nimg0.jpg img1.jpg\nimg1.jpg img0.jpg\n"
         "  img2.jpg\timg3.jpg  \nimg2.jpg img2.jpg\n";
  const auto pairs = PairsFromFile(dir.File("pairs.txt"), images);
  ASSERT_EQ(pairs.size(), 2u);  // Duplicate (reversed) and self pair dropped.
  EXPECT_EQ(pairs[0], ImagePair(1, 2));
  EXPECT_EQ(pairs[1], ImagePair(3, 4));

  WritePairsFile(dir.File("out.txt"), pairs, images);
  EXPECT_EQ(PairsFromFile(dir.File("out.txt"), images), pairs);

  std::ofstream(dir.File("bad.txt")) << "img0.jpg img1.jpg\nimg0.jpg\n";
  try {
    PairsFromFile(dir.File("bad.txt"), images);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(PairsFromFile(dir.File("missing.txt"), images),
               std::runtime_error);
}

}  // namespace
}  // namespace l2m
