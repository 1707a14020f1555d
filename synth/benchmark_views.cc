// Novel views per second at size x size (default 512): lifting excluded (done
// once per photo), rasterisation + shading + hole mask + forward and backward
// dense GT included; inpainting reported separately (OpenCV Telea).
//
//   synth_benchmark [size] [seconds per setting]

#include "l2m_core/util/progress.h"
#include "synth/novel_view.h"

#include <Eigen/LU>
#include <opencv2/core.hpp>

#include <cstdlib>
#include <iostream>
#include <random>

int main(int argc, char** argv) {
  using namespace l2m;
  const int size = argc > 1 ? std::atoi(argv[1]) : 512;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3;
  cv::setNumThreads(1);
  cv::Mat image(size, size, CV_8UC3);
  cv::randu(image, 0, 255);
  const cv::Mat disparity = ProceduralDisparity(size, size, 1);
  const PinholeCamera camera =
      PinholeCamera::FromFocalFraction(size, size, 0.6);
  const LiftedImage lifted =
      LiftImage(image, disparity, camera, LiftingOptions());
  std::cout << "Novel views at " << size << "x" << size
            << " (procedural depth, "
            << "reference pose ranges), " << cv::getNumberOfCPUs() << " CPUs\n";
  for (const bool inpaint : {false, true}) {
    for (const int threads : {1, 2}) {
      NovelViewOptions options;
      options.inpaint = inpaint;
      options.raster.num_threads = threads;
      std::mt19937_64 rng(3);
      int views = 0;
      double holes = 0;
      Timer timer;
      while (timer.ElapsedSeconds() < seconds) {
        const Eigen::Matrix4d T = SampleCam2FromCam1(PoseRangeOptions(), &rng);
        const NovelView view = RenderNovelView(lifted, camera, T, options);
        const GtWarp f = ComputeGtWarp(
            lifted.depth, camera, view.depth, camera, T, 0.05, threads);
        const GtWarp b = ComputeGtWarp(view.depth,
                                       camera,
                                       lifted.depth,
                                       camera,
                                       T.inverse(),
                                       0.05,
                                       threads);
        holes +=
            cv::countNonZero(view.hole_mask) / static_cast<double>(size * size);
        ++views;
        (void)f;
        (void)b;
      }
      const double rate = views / timer.ElapsedSeconds();
      std::cout << (inpaint ? "with inpainting   " : "render + dense GT ")
                << threads << " thread(s): " << rate << " views/s (" << views
                << " views, mean holes " << 100 * holes / views << " %)\n";
    }
  }
  return 0;
}
