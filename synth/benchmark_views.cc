// Novel views per second at size x size (default 512): lifting excluded (done
// once per photo), rasterisation + shading + hole mask + forward and backward
// dense GT included; inpainting reported separately (OpenCV Telea).
//
//   synth_benchmark [size] [seconds per setting, or Nv: N views] [threads:
//                   1,2] [inpaint: 0,1 (2: Telea at half resolution)]
//
// Besides wall-clock views/s it prints the process CPU time per view: on the
// shared 2-core machine the wall rate depends on the other users' load, the
// CPU time much less so (1000 / CPU ms is the rate of one idle core).

#include "l2m_core/util/progress.h"
#include "synth/novel_view.h"

#include <Eigen/LU>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <malloc.h>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) values.push_back(std::atoi(item.c_str()));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace l2m;
  const int size = argc > 1 ? std::atoi(argv[1]) : 512;
  // "20v": exactly 20 views per setting (for perf stat), else seconds.
  const std::string duration = argc > 2 ? argv[2] : "3";
  const bool fixed_count = !duration.empty() && duration.back() == 'v';
  const double seconds = std::atof(duration.c_str());
  const std::vector<int> thread_counts = ParseList(argc > 3 ? argv[3] : "1,2");
  const std::vector<int> inpaint_modes = ParseList(argc > 4 ? argv[4] : "0,1");
  // As `l2m synth` does (synth_command.cc): keep freed blocks in the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
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
  for (const int inpaint : inpaint_modes) {
    for (const int threads : thread_counts) {
      NovelViewOptions options;
      options.inpaint = inpaint != 0;
      options.inpaint_scale = std::max(1, inpaint);  // 2: half resolution.
      options.raster.num_threads = threads;
      std::mt19937_64 rng(3);
      int views = 0;
      double holes = 0;
      Timer timer;
      const double cpu_start = ProcessCpuSeconds();
      while (fixed_count ? views < seconds : timer.ElapsedSeconds() < seconds) {
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
      const double cpu_ms = 1000 * (ProcessCpuSeconds() - cpu_start) / views;
      std::cout << (inpaint == 0 ? "render + dense GT "
                    : inpaint == 1
                        ? "with inpainting   "
                        : "inpainting at 1/" + std::to_string(inpaint) + " ")
                << threads << " thread(s): " << rate << " views/s, " << cpu_ms
                << " CPU ms/view (" << views << " views, mean holes "
                << 100 * holes / views << " %)\n";
    }
  }
  return 0;
}
