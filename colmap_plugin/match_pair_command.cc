#include "colmap_plugin/match_pair_command.h"

#include "colmap_plugin/match_visualization.h"
#include "colmap_plugin/option_manager.h"
#include "colmap_plugin/reconstruction.h"
#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "matcher_adapters/image_io.h"
#include "matcher_adapters/matcher_factory.h"

#include <opencv2/imgcodecs.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace l2m {
namespace {

std::string MatchesText(const PairMatches& m,
                        const std::string& image1,
                        const std::string& image2) {
  std::ostringstream out;
  out << "# l2m match_pair: " << m.size() << " matches\n"
      << "# image1 " << image1 << "\n# image2 " << image2 << "\n"
      << "# x1 y1 x2 y2 score (COLMAP pixels of the original images: the "
         "top-left pixel's centre is (0.5, 0.5))\n";
  char line[128];
  for (size_t i = 0; i < m.size(); ++i) {
    std::snprintf(line,
                  sizeof(line),
                  "%.3f %.3f %.3f %.3f %.4f\n",
                  m.xy1[2 * i],
                  m.xy1[2 * i + 1],
                  m.xy2[2 * i],
                  m.xy2[2 * i + 1],
                  m.scores[i]);
    out << line;
  }
  return out.str();
}

}  // namespace

int RunMatchPairCommand(int argc, char** argv) {
  std::string image1_path, image2_path, output_path;
  MatcherOptions matcher;
  matcher.type = "l2m";
  MatchingOptions matching;  // Registered for the shared flags; unused here.
  MatchPlotOptions plot;
  OptionManager options(
      "match_pair",
      "Matches two images and writes matches.txt and matches.png; the dense "
      "l2m matcher\nalso writes certainty.png (A's grid | B's grid) and "
      "warp.png (each image's colours\nfetched onto the other's grid, white "
      "where uncertain).");
  options.AddRequired("image1", &image1_path, "First image.");
  options.AddRequired("image2", &image2_path, "Second image.");
  options.AddRequired(
      "output_path", &output_path, "Folder for the results (created).");
  AddMatcherOptions(&options, &matcher, &matching);
  options.Add("Plot.max_lines", &plot.max_lines, "Matches drawn in the plot.");
  options.Add("Plot.max_height",
              &plot.max_height,
              "Height of the match plot in pixels.");
  if (!options.Parse(argc, argv)) return 0;
  plot.Check();

  const MatcherImage image1 = LoadMatcherImage(1, image1_path);
  const MatcherImage image2 = LoadMatcherImage(2, image2_path);
  std::filesystem::create_directories(output_path);
  Timer timer;
  PairMatches matches;
  L2mDenseOutput dense;
  if (matcher.type == "l2m") {
    std::string error;
    if (!matcher.l2m.Check(&error)) throw std::invalid_argument(error);
    auto l2m = CreateL2mMatcher(matcher.l2m);
    std::cout << "Loaded " << matcher.l2m.preset << " in "
              << timer.ElapsedSeconds() << " s\n";
    timer.Restart();
    matches = l2m->MatchDense(image1, image2, &dense);
  } else {
    auto m = CreateMatcher(matcher);
    matches = m->IsDense()
                  ? m->MatchDense(image1, image2)
                  : m->MatchFeatures(m->Extract(image1), m->Extract(image2));
  }
  const double match_s = timer.ElapsedSeconds();

  const std::string dir = output_path + "/";
  WriteFileAtomic(dir + "matches.txt",
                  MatchesText(matches, image1_path, image2_path));
  WritePngAtomic(dir + "matches.png",
                 DrawMatchPlot(image1.bgr, image2.bgr, matches, plot));
  std::cout << "Matched in " << match_s << " s: " << matches.size()
            << " matches -> " << dir << "matches.txt, matches.png";
  if (!dense.warp.empty()) {
    WritePngAtomic(dir + "certainty.png", CertaintyToGrey(dense.certainty));
    WritePngAtomic(
        dir + "warp.png",
        DrawWarp(image1.bgr, image2.bgr, dense.warp, dense.certainty));
    std::cout << ", certainty.png, warp.png (" << dense.warp.cols / 2 << "x"
              << dense.warp.rows << " per image)";
  }
  std::cout << "\n";
  return 0;
}

}  // namespace l2m
