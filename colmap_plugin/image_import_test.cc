#include "colmap_plugin/image_import.h"

#include "tests/test_utils.h"

#include <gtest/gtest.h>
#include <libexif/exif-data.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>

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

// A JPEG with an EXIF APP1 segment carrying the given focal tags.
void WriteJpegWithExif(const std::string& path,
                       int w,
                       int h,
                       int f35,
                       double f_mm,
                       double plane_res) {
  cv::Mat im(h, w, CV_8UC3, cv::Scalar(90, 120, 150));
  std::vector<uchar> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", im, jpeg));
  ExifData* exif = exif_data_new();
  exif_data_set_byte_order(exif, EXIF_BYTE_ORDER_INTEL);
  auto add = [&](ExifIfd ifd, ExifTag tag) {
    ExifEntry* e = exif_entry_new();
    exif_content_add_entry(exif->ifd[ifd], e);
    exif_entry_initialize(e, tag);
    exif_entry_unref(e);
    return e;
  };
  if (f35 > 0)
    exif_set_short(add(EXIF_IFD_EXIF, EXIF_TAG_FOCAL_LENGTH_IN_35MM_FILM)->data,
                   EXIF_BYTE_ORDER_INTEL,
                   f35);
  if (f_mm > 0) {
    ExifEntry* fl = add(EXIF_IFD_EXIF, EXIF_TAG_FOCAL_LENGTH);
    exif_set_rational(fl->data,
                      EXIF_BYTE_ORDER_INTEL,
                      {static_cast<ExifLong>(f_mm * 100), 100});
    ExifEntry* res = add(EXIF_IFD_EXIF, EXIF_TAG_FOCAL_PLANE_X_RESOLUTION);
    exif_set_rational(res->data,
                      EXIF_BYTE_ORDER_INTEL,
                      {static_cast<ExifLong>(plane_res * 100), 100});
    exif_set_short(
        add(EXIF_IFD_EXIF, EXIF_TAG_FOCAL_PLANE_RESOLUTION_UNIT)->data,
        EXIF_BYTE_ORDER_INTEL,
        4);  // mm
  }
  unsigned char* data = nullptr;
  unsigned int size = 0;
  exif_data_save_data(exif, &data, &size);
  exif_data_unref(exif);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(jpeg.data()), 2);  // SOI
  const unsigned len = size + 2;
  const unsigned char app1[4] = {0xFF,
                                 0xE1,
                                 static_cast<unsigned char>(len >> 8),
                                 static_cast<unsigned char>(len & 0xFF)};
  out.write(reinterpret_cast<const char*>(app1), 4);
  out.write(reinterpret_cast<const char*>(data), size);
  out.write(reinterpret_cast<const char*>(jpeg.data() + 2), jpeg.size() - 2);
  free(data);
}

TEST(ImageImport, ExifFocalLength) {
  test::TempDir dir;
  // 35 mm equivalent 36 mm on a 400x300 image: f = 36/36 * 400.
  WriteJpegWithExif(dir.File("a.jpg"), 400, 300, 36, 0, 0);
  FocalFromExif f = ReadExifFocal(dir.File("a.jpg"), 400, 300);
  EXPECT_NEAR(f.focal_px, 400, 1e-6);
  EXPECT_EQ(f.source, "exif_35mm");
  // 4.5 mm lens, 200 px per mm on the sensor: f = 900 px.
  WriteJpegWithExif(dir.File("b.jpg"), 400, 300, 0, 4.5, 200);
  f = ReadExifFocal(dir.File("b.jpg"), 400, 300);
  EXPECT_NEAR(f.focal_px, 900, 1e-6);
  EXPECT_EQ(f.source, "exif_focal_plane");
  // The importer uses it and marks the camera as having a focal prior.
  std::filesystem::create_directories(dir.File("images"));
  std::filesystem::copy(dir.File("b.jpg"), dir.File("images/b.jpg"));
  Database db(dir.File("db.db"), Database::Mode::kCreate);
  const ImageImportSummary s = ImportImages(dir.File("images"), {}, &db);
  EXPECT_EQ(s.num_exif_focal, 1);
  EXPECT_NEAR(db.ReadAllCameras()[0].params[0], 900, 1e-6);
  EXPECT_TRUE(db.ReadAllCameras()[0].prior_focal_length);
  // No EXIF at all.
  WriteImage(dir.File("c.png"), 50, 40);
  EXPECT_EQ(ReadExifFocal(dir.File("c.png"), 50, 40).focal_px, 0);
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
