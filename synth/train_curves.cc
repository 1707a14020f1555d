#include "synth/train_curves.h"

#include "matcher_adapters/image_io.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <vector>

namespace l2m {
namespace {

struct Series {
  std::string label;
  cv::Scalar colour;
  std::vector<double> x, y;
};

std::string Format(double v) {
  char buffer[32];
  if (v != 0 && (std::abs(v) < 1e-2 || std::abs(v) >= 1e4)) {
    std::snprintf(buffer, sizeof(buffer), "%.1e", v);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.3g", v);
  }
  return buffer;
}

// One panel: axes, 5 ticks per axis, the series as polylines, a legend.
void DrawPanel(cv::Mat& canvas,
               const cv::Rect& box,
               const std::string& title,
               const std::vector<Series>& series,
               bool log_y) {
  const cv::Scalar black(0, 0, 0), grey(220, 220, 220);
  cv::rectangle(canvas, box, cv::Scalar(255, 255, 255), cv::FILLED);
  const cv::Rect plot(box.x + 70, box.y + 30, box.width - 90, box.height - 70);
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0,
         y1 = -x0;
  auto ty = [&](double v) {
    return log_y ? std::log10(std::max(v, 1e-12)) : v;
  };
  for (const Series& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i]));
      y1 = std::max(y1, ty(s.y[i]));
    }
  }
  cv::putText(canvas,
              title,
              {box.x + 70, box.y + 20},
              cv::FONT_HERSHEY_SIMPLEX,
              0.55,
              black,
              1,
              cv::LINE_AA);
  if (!(x1 >= x0) || !(y1 >= y0)) {
    cv::putText(canvas,
                "no data",
                {plot.x + 10, plot.y + plot.height / 2},
                cv::FONT_HERSHEY_SIMPLEX,
                0.5,
                black,
                1,
                cv::LINE_AA);
    return;
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  auto px = [&](double x, double y) {
    return cv::Point(
        plot.x + static_cast<int>((x - x0) / (x1 - x0) * plot.width),
        plot.y + plot.height -
            static_cast<int>((ty(y) - y0) / (y1 - y0) * plot.height));
  };
  for (int k = 0; k <= 4; ++k) {
    const int gy = plot.y + plot.height - k * plot.height / 4;
    const int gx = plot.x + k * plot.width / 4;
    cv::line(canvas, {plot.x, gy}, {plot.x + plot.width, gy}, grey);
    cv::line(canvas, {gx, plot.y}, {gx, plot.y + plot.height}, grey);
    const double yv = y0 + k * (y1 - y0) / 4;
    cv::putText(canvas,
                Format(log_y ? std::pow(10.0, yv) : yv),
                {box.x + 5, gy + 4},
                cv::FONT_HERSHEY_SIMPLEX,
                0.4,
                black,
                1,
                cv::LINE_AA);
    cv::putText(canvas,
                Format(x0 + k * (x1 - x0) / 4),
                {gx - 15, plot.y + plot.height + 18},
                cv::FONT_HERSHEY_SIMPLEX,
                0.4,
                black,
                1,
                cv::LINE_AA);
  }
  cv::rectangle(canvas, plot, black);
  cv::putText(canvas,
              "step",
              {plot.x + plot.width - 30, plot.y + plot.height + 36},
              cv::FONT_HERSHEY_SIMPLEX,
              0.4,
              black,
              1,
              cv::LINE_AA);
  int legend_y = plot.y + 16;
  for (const Series& s : series) {
    std::vector<cv::Point> points;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (std::isfinite(s.y[i])) points.push_back(px(s.x[i], s.y[i]));
    }
    if (points.size() == 1)
      cv::circle(canvas, points[0], 3, s.colour, cv::FILLED);
    cv::polylines(canvas, points, false, s.colour, 2, cv::LINE_AA);
    cv::putText(canvas,
                s.label,
                {plot.x + plot.width - 150, legend_y},
                cv::FONT_HERSHEY_SIMPLEX,
                0.45,
                s.colour,
                1,
                cv::LINE_AA);
    legend_y += 18;
  }
}

}  // namespace

void PlotTrainingCurves(const std::string& log_path,
                        const std::string& png_path) {
  std::ifstream in(log_path);
  if (!in) throw std::runtime_error("cannot read training log " + log_path);
  const cv::Scalar blue(200, 90, 30), red(40, 40, 210), green(60, 160, 60),
      orange(0, 140, 255), purple(160, 60, 140);
  Series loss{"loss", blue}, loss_smooth{"loss (mean of 10)", red};
  Series lr{"lr decoder", blue};
  Series epe{"EPE px", red};
  Series pck1{"PCK@1px", blue}, pck3{"PCK@3px", green}, pck5{"PCK@5px", red};
  Series cert_valid{"cert. on valid", green},
      cert_invalid{"cert. on invalid", red}, ece{"calibration error", purple};
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(log_path + ":" + std::to_string(number) +
                               ": not a JSON line (" + e.what() + ")");
    }
    auto get = [&](const char* key) {
      return j.contains(key) && j[key].is_number()
                 ? j[key].get<double>()
                 : std::numeric_limits<double>::quiet_NaN();
    };
    const double step = get("step");
    const std::string kind = j.value("kind", "");
    if (kind == "train") {
      loss.x.push_back(step);
      loss.y.push_back(get("loss"));
      lr.x.push_back(step);
      lr.y.push_back(get("lr_decoder"));
    } else if (kind == "val") {
      epe.x.push_back(step);
      epe.y.push_back(get("epe_px"));
      for (Series* s : {&pck1, &pck3, &pck5, &cert_valid, &cert_invalid, &ece})
        s->x.push_back(step);
      pck1.y.push_back(get("pck_1"));
      pck3.y.push_back(get("pck_3"));
      pck5.y.push_back(get("pck_5"));
      cert_valid.y.push_back(get("certainty_valid"));
      cert_invalid.y.push_back(get("certainty_invalid"));
      ece.y.push_back(get("certainty_ece"));
    }
  }
  if (loss.x.empty()) {
    throw std::runtime_error("training log " + log_path +
                             " has no training line");
  }
  for (size_t i = 0; i < loss.y.size(); ++i) {
    const size_t lo = i >= 9 ? i - 9 : 0;
    double sum = 0;
    for (size_t k = lo; k <= i; ++k) sum += loss.y[k];
    loss_smooth.x.push_back(loss.x[i]);
    loss_smooth.y.push_back(sum / (i - lo + 1));
  }
  cv::Mat canvas(900, 1400, CV_8UC3, cv::Scalar(245, 245, 245));
  const int w = 700, h = 300;
  DrawPanel(canvas,
            {0, 0, w, h},
            "training loss (log scale)",
            {loss, loss_smooth},
            true);
  DrawPanel(canvas, {w, 0, w, h}, "learning rate", {lr}, false);
  DrawPanel(canvas,
            {0, h, w, h},
            "validation: mean end-point error (px)",
            {epe},
            false);
  DrawPanel(canvas, {w, h, w, h}, "validation: PCK", {pck1, pck3, pck5}, false);
  DrawPanel(canvas,
            {0, 2 * h, w, h},
            "validation: certainty vs GT validity",
            {cert_valid, cert_invalid, ece},
            false);
  cv::putText(canvas,
              log_path,
              {w + 20, 2 * h + 40},
              cv::FONT_HERSHEY_SIMPLEX,
              0.45,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  WritePngAtomic(png_path, canvas);
}

}  // namespace l2m
