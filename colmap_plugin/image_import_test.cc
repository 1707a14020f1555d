#include "colmap_plugin/image_import.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>

namespace l2m {
namespace {

void WriteImage(const std::string& path, int w, int h) {
  cv::Mat im(h, w, CV_8UC3);
  cv::randu(im, 0, 255);
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path());
  ASSERT_TRUE(cv::imwrite(path, im));
}

TEST(ImageImport, PriorFocalSharedCameraAndResume) {
  test::TempDir dir;
  WriteImage(dir.File("images/a.png"), 320, 240);
  WriteImage(dir.File("images/sub/b.jpg"), 320, 240);
  WriteImage(dir.File("images/c.JPG"), 320, 240);
  EXPECT_EQ(ListImageFiles(dir.File("images")),
            (std::vector<std::string>{"a.png", "c.JPG", "sub/b.jpg"}));

  Database db(dir.File("db.db"), Database::Mode::kCreate);
  ImageImportOptions options;
  options.single_camera = true;
  const ImageImportSummary s = ImportImages(dir.File("images"), options, &db);
  EXPECT_EQ(s.num_imported, 3);
  const auto cameras = db.ReadAllCameras();
  ASSERT_EQ(cameras.size(), 1u);
  // No EXIF: f = 1.2 * max(W, H), principal point at the centre, no prior.
  EXPECT_EQ(cameras[0].params, (std::vector<double>{1.2 * 320, 160, 120, 0}));
  EXPECT_FALSE(cameras[0].prior_focal_length);

  // A new image later: only it is added, to the same camera.
  WriteImage(dir.File("images/d.png"), 320, 240);
  const ImageImportSummary s2 = ImportImages(dir.File("images"), options, &db);
  EXPECT_EQ(s2.num_imported, 1);
  EXPECT_EQ(s2.num_existing, 3);
  EXPECT_EQ(db.ReadAllCameras().size(), 1u);

  // A different size cannot share the camera: skipped, or an error if strict.
  WriteImage(dir.File("images/e.png"), 100, 80);
  const ImageImportSummary s3 = ImportImages(dir.File("images"), options, &db);
  ASSERT_EQ(s3.skipped.size(), 1u);
  EXPECT_NE(s3.skipped[0].find("e.png"), std::string::npos);
  options.strict = true;
  EXPECT_THROW(ImportImages(dir.File("images"), options, &db),
               std::runtime_error);
}

TEST(ImageImport, OneCameraPerImageAndModels) {
  test::TempDir dir;
  WriteImage(dir.File("images/a.png"), 320, 240);
  WriteImage(dir.File("images/b.png"), 200, 300);
  Database db(dir.File("db.db"), Database::Mode::kCreate);
  ImageImportOptions options;
  options.camera_model = "PINHOLE";
  ImportImages(dir.File("images"), options, &db);
  const auto cameras = db.ReadAllCameras();
  ASSERT_EQ(cameras.size(), 2u);
  EXPECT_EQ(cameras[1].params, (std::vector<double>{360, 360, 100, 150}));
  options.camera_model = "FISHEYE_9000";
  EXPECT_THROW(ImportImages(dir.File("images"), options, &db),
               std::invalid_argument);
}

TEST(ImageImport, ExifFocalOfRealPhotos) {
  L2M_REQUIRE_SHARED(shared);
  const std::string images = shared + "/data/sacre_coeur_hloc/images";
  int with_focal = 0;
  for (const auto& name : ListImageFiles(images)) {
    const cv::Mat im = cv::imread(images + "/" + name);
    const FocalFromExif f =
        ReadExifFocal(images + "/" + name, im.cols, im.rows);
    if (f.focal_px > 0) {
      ++with_focal;
      // A plausible photo focal length: between 0.5x and 5x the long side.
      EXPECT_GT(f.focal_px, 0.5 * std::max(im.cols, im.rows)) << name;
      EXPECT_LT(f.focal_px, 5.0 * std::max(im.cols, im.rows)) << name;
    }
  }
  std::cout << with_focal
            << " of the sacre_coeur photos carry an EXIF focal length"
            << std::endl;
}

}  // namespace
}  // namespace l2m
