#include "datasets/evaluation.h"

#include "datasets/metrics.h"
#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "matcher_adapters/image_io.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace l2m {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// LoFTR's threshold on the symmetric squared epipolar distance.
constexpr double kEpipolarPrecisionThreshold = 5e-4;
constexpr int kNumVisMatches = 300;

// FNV-1a: a seed per pair that does not depend on the standard library.
uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string Fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string SafeFileName(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
        c != '_')
      c = '_';
  return out;
}

// K of an image of size `from` (0-based pixel centres) for the image resized
// to `to`: pixel corners scale, so centres move by the half pixel.
cv::Matx33d ScaleIntrinsics(const cv::Matx33d& K, double sx, double sy) {
  cv::Matx33d out = K;
  out(0, 0) *= sx;
  out(0, 1) *= sx;
  out(0, 2) = sx * (K(0, 2) + 0.5) - 0.5;
  out(1, 1) *= sy;
  out(1, 2) = sy * (K(1, 2) + 0.5) - 0.5;
  return out;
}

cv::Matx33d IntrinsicsForImage(const cv::Matx33d& K,
                               const cv::Size& K_size,
                               const cv::Size& size) {
  if (K_size.empty() || K_size == size) return K;
  return ScaleIntrinsics(K,
                         static_cast<double>(size.width) / K_size.width,
                         static_cast<double>(size.height) / K_size.height);
}

double ProtocolScale(const ProtocolSpec& spec, const cv::Size& size) {
  if (spec.long_side > 0)
    return spec.long_side / std::max(size.width, size.height);
  if (spec.short_side > 0)
    return spec.short_side / std::min(size.width, size.height);
  return 1.0;
}

PairMatches RunMatcher(Matcher* matcher,
                       const MatcherImage& a,
                       const MatcherImage& b) {
  if (matcher->IsDense()) return matcher->MatchDense(a, b);
  const ImageFeatures f1 = matcher->Extract(a);
  const ImageFeatures f2 = matcher->Extract(b);
  return matcher->MatchFeatures(f1, f2);
}

// Indices of a uniform random subset of n (all, shuffled, when n <= k).
std::vector<int> SampleIndices(int n, int k, std::mt19937_64* rng) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), *rng);
  if (k > 0 && n > k) idx.resize(k);
  return idx;
}

nlohmann::json ErrorToJson(double e) {
  return std::isfinite(e) ? nlohmann::json(e) : nlohmann::json(nullptr);
}
double ErrorFromJson(const nlohmann::json& j) {
  return j.is_null() ? kInf : j.get<double>();
}

}  // namespace

std::vector<std::string> KnownProtocols() { return {"roma", "loftr"}; }

bool EvalOptions::Check(std::string* error) const {
  std::string why;
  if (protocol != "roma" && protocol != "loftr")
    why = "Eval.protocol must be roma or loftr, not '" + protocol + "'";
  else if (!estimator.Check(&why)) {
  } else if (!(pose_threshold_px > 0) || !(homography_threshold_px > 0))
    why = "Eval thresholds must be > 0";
  else if (num_samples < -1 || num_samples == 0)
    why = "Eval.num_samples must be -1 (protocol) or > 0";
  else if (num_runs < -1 || num_runs == 0)
    why = "Eval.num_runs must be -1 (protocol) or > 0";
  else if (num_worst_pairs < 0 || max_num_pairs < 0)
    why = "Eval.num_worst_pairs and Eval.max_num_pairs must be >= 0";
  if (error) *error = why;
  return why.empty();
}

ProtocolSpec MakeProtocol(const EvalOptions& options, SceneKind scene_kind) {
  ProtocolSpec s;
  s.name = options.protocol;
  s.estimator = options.estimator;
  const bool roma = options.protocol == "roma";
  if (scene_kind == SceneKind::kPlanar) {
    s.geometry = PairGeometry::kHomography;
    s.short_side = 480;
    s.num_samples = roma ? 5000 : 0;
    s.num_runs = 1;
    s.failure_error = kInf;
    s.threshold_px = options.homography_threshold_px;
  } else {
    s.geometry = PairGeometry::kRelativePose;
    if (scene_kind == SceneKind::kIndoor) {
      s.short_side = 480;
    } else if (roma) {
      s.long_side = 1200;
    }
    s.num_samples = roma ? 5000 : 0;
    s.num_runs = roma ? 5 : 1;
    s.resample_per_run = scene_kind != SceneKind::kIndoor;
    s.loftr_focal = !roma;
    s.failure_error = roma ? 90.0 : kInf;
    s.threshold_px = options.pose_threshold_px;
  }
  if (options.num_samples > 0) s.num_samples = options.num_samples;
  if (options.num_runs > 0) s.num_runs = options.num_runs;
  return s;
}

std::string ProtocolSpec::DescribeEstimator() const {
  std::string m = estimator.method == "ransac" ? "OpenCV RANSAC"
                  : estimator.method == "magsac"
                      ? "OpenCV USAC_MAGSAC (MAGSAC++)"
                      : "OpenCV USAC_DEFAULT (LO-RANSAC)";
  std::ostringstream s;
  if (geometry == PairGeometry::kRelativePose) {
    s << m << ", essential matrix, threshold " << threshold_px << " px / "
      << (loftr_focal ? "mean(fx1, fy2, fx1, fy2)" : "mean focal") << ", prob "
      << estimator.confidence;
  } else {
    s << m << ", homography, threshold " << threshold_px
      << " px at short side 480, prob " << estimator.confidence;
  }
  return s.str();
}

std::string ProtocolSpec::Describe() const {
  std::ostringstream s;
  s << name << ": ";
  if (geometry == PairGeometry::kRelativePose) {
    if (long_side > 0)
      s << "K and matches rescaled to long side " << long_side << ", ";
    if (short_side > 0)
      s << "K and matches rescaled to short side " << short_side << ", ";
    if (long_side == 0 && short_side == 0) s << "original K, ";
    s << (num_samples > 0 ? "sample(" + std::to_string(num_samples) + ")"
                          : "all matches")
      << " x " << num_runs << (num_runs > 1 ? " runs" : " run");
    if (num_runs > 1)
      s << (resample_per_run ? " (resampled per run)"
                             : " (one sample set, reshuffled)");
    s << ", " << DescribeEstimator()
      << ", recoverPose keeping most inliers, failure = "
      << (std::isfinite(failure_error) ? Fixed(failure_error, 0) + " deg"
                                       : "inf")
      << "; pose error = max(R angle, t angle folded to <= 90)";
  } else {
    s << "errors in px of the images rescaled to short side " << short_side
      << ", "
      << (num_samples > 0 ? "sample(" + std::to_string(num_samples) + ")"
                          : "all matches")
      << ", " << DescribeEstimator()
      << "; mean error of the 4 corner-pixel centres under H_est vs H_gt, "
         "failure = inf";
  }
  return s.str();
}

nlohmann::json PairResult::ToJson() const {
  nlohmann::json j;
  j["name"] = name;
  j["fingerprint"] = fingerprint;
  j["failure"] = failure;
  j["num_matches"] = num_matches;
  j["match_seconds"] = match_seconds;
  for (const auto& [key, values] :
       {std::pair<const char*, const std::vector<double>*>{"errors", &errors},
        {"rotation_errors", &rotation_errors},
        {"translation_errors", &translation_errors}}) {
    nlohmann::json a = nlohmann::json::array();
    for (double e : *values) a.push_back(ErrorToJson(e));
    j[key] = a;
  }
  j["num_inliers"] = num_inliers;
  j["gt_points_error_px"] = ErrorToJson(gt_points_error_px);
  j["precision"] = precision;
  j["vis_matches"] = vis_matches;
  j["vis_correct"] = vis_correct;
  return j;
}

PairResult PairResult::FromJson(const nlohmann::json& j) {
  PairResult r;
  r.name = j.at("name").get<std::string>();
  r.fingerprint = j.at("fingerprint").get<std::string>();
  r.failure = j.at("failure").get<std::string>();
  r.num_matches = j.at("num_matches").get<int64_t>();
  r.match_seconds = j.at("match_seconds").get<double>();
  for (const auto& e : j.at("errors")) r.errors.push_back(ErrorFromJson(e));
  for (const auto& e : j.at("rotation_errors"))
    r.rotation_errors.push_back(ErrorFromJson(e));
  for (const auto& e : j.at("translation_errors"))
    r.translation_errors.push_back(ErrorFromJson(e));
  r.num_inliers = j.at("num_inliers").get<std::vector<int>>();
  r.gt_points_error_px = ErrorFromJson(j.at("gt_points_error_px"));
  r.precision = j.at("precision").get<double>();
  r.vis_matches = j.at("vis_matches").get<std::vector<float>>();
  r.vis_correct = j.at("vis_correct").get<std::vector<int>>();
  return r;
}

double PairResult::MeanError() const {
  if (errors.empty()) return kInf;
  double sum = 0;
  for (double e : errors) sum += e;
  return sum / errors.size();
}

PairResult EvaluatePair(const EvalPair& pair,
                        Matcher* matcher,
                        const ProtocolSpec& spec,
                        unsigned seed) {
  PairResult r;
  r.name = pair.name;
  const MatcherImage a = LoadMatcherImage(0, pair.image_path1);
  const MatcherImage b = LoadMatcherImage(1, pair.image_path2);
  const cv::Size size1 = a.bgr.size(), size2 = b.bgr.size();

  PairMatches m;
  Timer timer;
  try {
    m = RunMatcher(matcher, a, b);
  } catch (const std::exception& e) {
    r.failure = e.what();
  }
  r.match_seconds = timer.ElapsedSeconds();
  const int n = static_cast<int>(m.size());
  r.num_matches = n;
  std::mt19937_64 rng(HashName(pair.name) ^
                      (0x9e3779b97f4a7c15ull * (seed + 1)));

  std::vector<cv::Point2d> p1(n), p2(n);  // COLMAP pixels, original images.
  for (int i = 0; i < n; ++i) {
    p1[i] = {m.xy1[2 * i], m.xy1[2 * i + 1]};
    p2[i] = {m.xy2[2 * i], m.xy2[2 * i + 1]};
  }
  std::vector<int> correct(n, 0);
  bool has_gt = false;

  if (spec.geometry == PairGeometry::kRelativePose) {
    const cv::Matx33d K1 = IntrinsicsForImage(pair.K1, pair.K_size1, size1);
    const cv::Matx33d K2 = IntrinsicsForImage(pair.K2, pair.K_size2, size2);
    // Normalised coordinates do not change with the protocol's rescaling;
    // only the threshold (in px of the rescaled image) does.
    const double s1 = ProtocolScale(spec, size1),
                 s2 = ProtocolScale(spec, size2);
    const cv::Matx33d K1s = ScaleIntrinsics(K1, s1, s1),
                      K2s = ScaleIntrinsics(K2, s2, s2);
    const double focal =
        spec.loftr_focal
            ? (K1s(0, 0) + K2s(1, 1)) / 2.0
            : (K1s(0, 0) + K1s(1, 1) + K2s(0, 0) + K2s(1, 1)) / 4.0;
    const double threshold = spec.threshold_px / focal;
    const cv::Matx33d K1s_inv = K1s.inv(), K2s_inv = K2s.inv();
    std::vector<cv::Point2d> n1(n), n2(n);
    for (int i = 0; i < n; ++i) {
      // COLMAP pixels -> 0-based pixel centres of the rescaled image.
      const cv::Vec3d q1 =
          K1s_inv * cv::Vec3d(p1[i].x * s1 - 0.5, p1[i].y * s1 - 0.5, 1);
      const cv::Vec3d q2 =
          K2s_inv * cv::Vec3d(p2[i].x * s2 - 0.5, p2[i].y * s2 - 0.5, 1);
      n1[i] = {q1[0], q1[1]};
      n2[i] = {q2[0], q2[1]};
    }
    const cv::Matx33d E_gt = EssentialFromPose(pair.R, pair.t);
    if (cv::norm(pair.t) > 0) {
      has_gt = true;
      for (int i = 0; i < n; ++i)
        correct[i] = SymmetricEpipolarDistanceSq(n1[i], n2[i], E_gt) <
                     kEpipolarPrecisionThreshold;
    }
    std::vector<int> sample;
    for (int run = 0; run < spec.num_runs; ++run) {
      if (run == 0 || spec.resample_per_run) {
        sample = SampleIndices(n, spec.num_samples, &rng);
      } else {
        std::shuffle(sample.begin(), sample.end(), rng);
      }
      std::vector<cv::Point2d> k1, k2;
      for (int i : sample) {
        k1.push_back(n1[i]);
        k2.push_back(n2[i]);
      }
      const RelativePoseEstimate est =
          EstimateRelativePose(k1, k2, threshold, spec.estimator);
      if (est.success) {
        const PoseError e = ComputePoseError(est.R, est.t, pair.R, pair.t);
        r.errors.push_back(e.max_deg);
        r.rotation_errors.push_back(e.rotation_deg);
        r.translation_errors.push_back(e.translation_deg);
      } else {
        r.errors.push_back(spec.failure_error);
        r.rotation_errors.push_back(spec.failure_error);
        r.translation_errors.push_back(spec.failure_error);
      }
      r.num_inliers.push_back(est.num_inliers);
    }
  } else {
    // DKM/LoFTR HPatches: errors and threshold at short side 480 of image 2.
    const double scale = std::min(size2.width, size2.height) / 480.0;
    has_gt = true;
    for (int i = 0; i < n; ++i)
      correct[i] = cv::norm(ApplyHomography(pair.H, p1[i]) - p2[i]) <
                   spec.threshold_px * scale;
    for (int run = 0; run < spec.num_runs; ++run) {
      const std::vector<int> sample = SampleIndices(n, spec.num_samples, &rng);
      std::vector<cv::Point2d> k1, k2;
      for (int i : sample) {
        k1.push_back(p1[i]);
        k2.push_back(p2[i]);
      }
      const HomographyEstimate est =
          EstimateHomography(k1, k2, spec.threshold_px * scale, spec.estimator);
      double error = spec.failure_error;
      if (est.success) {
        error =
            HomographyCornerError(
                est.H, pair.H, ImageCornerPixels(size1.width, size1.height)) /
            scale;
        if (!pair.gt_points.empty() && run == 0) {
          double sum = 0;
          for (const cv::Vec4d& g : pair.gt_points)
            sum += cv::norm(ApplyHomography(est.H, {g[0], g[1]}) -
                            cv::Point2d(g[2], g[3]));
          r.gt_points_error_px = sum / pair.gt_points.size();
        }
      } else if (!pair.gt_points.empty() && run == 0) {
        r.gt_points_error_px = kInf;
      }
      if (!std::isfinite(error)) error = kInf;
      r.errors.push_back(error);
      r.num_inliers.push_back(est.num_inliers);
    }
  }
  if (pair.dense_gt) {
    // Dense GT (synth) overrides: a match is correct within the threshold.
    has_gt = true;
    for (int i = 0; i < n; ++i) {
      double x2, y2;
      correct[i] = pair.dense_gt->Transfer(p1[i].x, p1[i].y, &x2, &y2) &&
                   std::hypot(x2 - p2[i].x, y2 - p2[i].y) < 3.0;
    }
  }
  if (has_gt && n > 0)
    r.precision = std::accumulate(correct.begin(), correct.end(), 0.0) / n;
  for (int i : SampleIndices(n, kNumVisMatches, &rng)) {
    r.vis_matches.insert(r.vis_matches.end(),
                         {static_cast<float>(p1[i].x),
                          static_cast<float>(p1[i].y),
                          static_cast<float>(p2[i].x),
                          static_cast<float>(p2[i].y)});
    r.vis_correct.push_back(has_gt ? correct[i] : -1);
  }
  return r;
}

nlohmann::json SummarizeResults(const std::vector<PairResult>& results,
                                const ProtocolSpec& spec) {
  nlohmann::json j;
  std::vector<double> errors;
  double matches = 0, seconds = 0, precision = 0;
  int num_precision = 0, num_failed = 0;
  for (const PairResult& r : results) {
    errors.insert(errors.end(), r.errors.begin(), r.errors.end());
    matches += r.num_matches;
    seconds += r.match_seconds;
    if (r.precision >= 0) precision += r.precision, ++num_precision;
    bool failed = !r.failure.empty();
    // Failed = the matcher threw or the estimator found no model in a run
    // (large but real errors are not failures).
    for (int inliers : r.num_inliers) failed |= inliers == 0;
    num_failed += failed;
  }
  const bool pose = spec.geometry == PairGeometry::kRelativePose;
  const std::vector<double> thresholds =
      pose ? std::vector<double>{5, 10, 20} : std::vector<double>{3, 5, 10};
  const std::vector<double> aucs = ErrorAuc(errors, thresholds);
  for (size_t i = 0; i < thresholds.size(); ++i) {
    const std::string key =
        "auc@" + Fixed(thresholds[i], 0) + (pose ? "" : "px");
    j[key] = 100.0 * aucs[i];
  }
  if (!pose) {
    std::vector<double> gt;
    for (const PairResult& r : results)
      if (r.gt_points_error_px >= 0) gt.push_back(r.gt_points_error_px);
    if (!gt.empty()) {
      std::sort(gt.begin(), gt.end());
      j["gt_points_error_px_median"] = ErrorToJson(gt[gt.size() / 2]);
      j["gt_points_below_5px"] =
          100.0 *
          std::count_if(gt.begin(), gt.end(), [](double e) { return e < 5; }) /
          gt.size();
    }
  }
  const size_t n = results.size();
  j["num_pairs"] = n;
  j["num_error_samples"] = errors.size();
  j["num_failed_pairs"] = num_failed;
  j["mean_num_matches"] = n ? matches / n : 0.0;
  j["mean_match_seconds"] = n ? seconds / n : 0.0;
  j["precision"] = num_precision ? 100.0 * precision / num_precision : -1.0;
  j["protocol"] = spec.Describe();
  j["protocol_name"] = spec.name;
  j["estimator"] = spec.DescribeEstimator();
  j["estimator_method"] = spec.estimator.method;
  return j;
}

void DrawErrorCurves(const std::string& path,
                     const std::string& title,
                     const std::string& x_label,
                     double x_max,
                     const std::vector<ErrorCurve>& curves) {
  const int W = 860, H = 600, left = 80, right = 30, top = 50, bottom = 70;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const int pw = W - left - right, ph = H - top - bottom;
  auto X = [&](double x) {
    return left + static_cast<int>(std::lround(pw * x / x_max));
  };
  auto Y = [&](double y) {
    return top + static_cast<int>(std::lround(ph * (1.0 - y / 100.0)));
  };
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const cv::Scalar black(0, 0, 0), grid(225, 225, 225);
  for (int k = 0; k <= 10; ++k) {  // Grid and ticks.
    const double x = x_max * k / 10.0, y = 10.0 * k;
    cv::line(img, {X(x), top}, {X(x), top + ph}, grid, 1);
    cv::line(img, {left, Y(y)}, {left + pw, Y(y)}, grid, 1);
    const std::string xt = Fixed(x, x_max < 10 ? 1 : 0);
    cv::putText(img,
                xt,
                {X(x) - 8 * static_cast<int>(xt.size()) / 2, top + ph + 22},
                font,
                0.45,
                black,
                1,
                cv::LINE_AA);
    cv::putText(img,
                std::to_string(10 * k),
                {left - 38, Y(y) + 5},
                font,
                0.45,
                black,
                1,
                cv::LINE_AA);
  }
  cv::rectangle(img, {left, top}, {left + pw, top + ph}, black, 1);
  cv::putText(img, title, {left, top - 18}, font, 0.55, black, 1, cv::LINE_AA);
  cv::putText(
      img,
      x_label,
      {left + pw / 2 - 6 * static_cast<int>(x_label.size()) / 2, H - 22},
      font,
      0.55,
      black,
      1,
      cv::LINE_AA);
  // Vertical y label, drawn on a rotated strip.
  cv::Mat strip(30, ph, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(strip,
              "% of pairs with error <= x",
              {ph / 2 - 120, 20},
              font,
              0.55,
              black,
              1,
              cv::LINE_AA);
  cv::rotate(strip, strip, cv::ROTATE_90_COUNTERCLOCKWISE);
  strip.copyTo(img(cv::Rect(8, top, 30, ph)));

  for (size_t c = 0; c < curves.size(); ++c) {
    std::vector<double> e = curves[c].errors;
    std::sort(e.begin(), e.end());
    std::vector<cv::Point> pts;
    const int steps = 400;
    for (int s = 0; s <= steps; ++s) {
      const double x = x_max * s / steps;
      const double frac =
          e.empty()
              ? 0
              : 100.0 * (std::upper_bound(e.begin(), e.end(), x) - e.begin()) /
                    e.size();
      pts.emplace_back(X(x), Y(frac));
    }
    cv::polylines(img, pts, false, curves[c].color, 2, cv::LINE_AA);
    // Legend, top left inside the plot.
    const int ly = top + 22 + 24 * static_cast<int>(c);
    cv::line(img,
             {left + 14, ly - 5},
             {left + 44, ly - 5},
             curves[c].color,
             3,
             cv::LINE_AA);
    cv::putText(img,
                curves[c].label,
                {left + 52, ly},
                font,
                0.5,
                black,
                1,
                cv::LINE_AA);
  }
  WritePngAtomic(path, img);
}

namespace {

void DrawPairPicture(const std::string& path,
                     const EvalPair& pair,
                     const PairResult& r,
                     const std::string& caption) {
  cv::Mat a = cv::imread(pair.image_path1, cv::IMREAD_COLOR);
  cv::Mat b = cv::imread(pair.image_path2, cv::IMREAD_COLOR);
  if (a.empty() || b.empty()) return;
  const int h = 480;
  const double sa = static_cast<double>(h) / a.rows,
               sb = static_cast<double>(h) / b.rows;
  cv::resize(a,
             a,
             cv::Size(std::max(1, static_cast<int>(a.cols * sa)), h),
             0,
             0,
             cv::INTER_AREA);
  cv::resize(b,
             b,
             cv::Size(std::max(1, static_cast<int>(b.cols * sb)), h),
             0,
             0,
             cv::INTER_AREA);
  cv::Mat canvas(h + 40, a.cols + b.cols, CV_8UC3, cv::Scalar(255, 255, 255));
  a.copyTo(canvas(cv::Rect(0, 40, a.cols, h)));
  b.copyTo(canvas(cv::Rect(a.cols, 40, b.cols, h)));
  for (size_t i = 0; i < r.vis_correct.size(); ++i) {
    const float* m = &r.vis_matches[4 * i];
    // COLMAP pixels -> drawing pixels (centre of pixel k is at k + 0.5).
    const cv::Point2d q1(m[0] * sa - 0.5, m[1] * sa - 0.5 + 40);
    const cv::Point2d q2(m[2] * sb - 0.5 + a.cols, m[3] * sb - 0.5 + 40);
    const cv::Scalar color = r.vis_correct[i] < 0   ? cv::Scalar(255, 160, 0)
                             : r.vis_correct[i] > 0 ? cv::Scalar(0, 200, 0)
                                                    : cv::Scalar(0, 0, 255);
    cv::line(canvas, q1, q2, color, 1, cv::LINE_AA);
    cv::circle(canvas, q1, 2, color, -1, cv::LINE_AA);
    cv::circle(canvas, q2, 2, color, -1, cv::LINE_AA);
  }
  cv::putText(canvas,
              caption,
              {8, 26},
              cv::FONT_HERSHEY_SIMPLEX,
              0.55,
              cv::Scalar(0, 0, 0),
              1,
              cv::LINE_AA);
  WritePngAtomic(path, canvas);
}

std::string MarkdownTable(const nlohmann::json& s,
                          const std::string& benchmark,
                          const std::string& matcher) {
  std::ostringstream md;
  const bool pose = s.contains("auc@5");
  md << "| benchmark | matcher | protocol | estimator | pairs | "
     << (pose ? "AUC@5 | AUC@10 | AUC@20" : "AUC@3px | AUC@5px | AUC@10px")
     << " | precision % | matches/pair | s/pair | failed |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  auto f = [](const nlohmann::json& v, int d) {
    return Fixed(v.get<double>(), d);
  };
  md << "| " << benchmark << " | " << matcher << " | "
     << s["protocol_name"].get<std::string>() << " | "
     << s["estimator_method"].get<std::string>() << " | "
     << s["num_pairs"].get<int>() << " | ";
  if (pose)
    md << f(s["auc@5"], 1) << " | " << f(s["auc@10"], 1) << " | "
       << f(s["auc@20"], 1);
  else
    md << f(s["auc@3px"], 1) << " | " << f(s["auc@5px"], 1) << " | "
       << f(s["auc@10px"], 1);
  md << " | " << (s["precision"].get<double>() < 0 ? "-" : f(s["precision"], 1))
     << " | " << f(s["mean_num_matches"], 0) << " | "
     << f(s["mean_match_seconds"], 2) << " | "
     << s["num_failed_pairs"].get<int>() << " |\n\n";
  md << "Protocol: " << s["protocol"].get<std::string>() << "\n\n";
  md << "Estimator: " << s["estimator"].get<std::string>() << "\n";
  if (s.contains("gt_points_below_5px"))
    md << "\nGT points (CMP): " << f(s["gt_points_below_5px"], 1)
       << "% of pairs with mean transfer error < 5 px under the estimated H.\n";
  return md.str();
}

}  // namespace

nlohmann::json RunEvaluation(const PairDataset& dataset,
                             Matcher* matcher,
                             const EvalOptions& options,
                             const std::string& output_dir,
                             const std::string& fingerprint,
                             std::ostream* log) {
  std::string why;
  if (!options.Check(&why)) throw std::invalid_argument(why);
  std::vector<EvalPair> pairs = dataset.pairs;
  if (options.max_num_pairs > 0 &&
      pairs.size() > static_cast<size_t>(options.max_num_pairs))
    pairs.resize(options.max_num_pairs);
  if (pairs.empty())
    throw std::runtime_error(dataset.name + " at " + dataset.root +
                             ": no pairs");
  PairDataset checked = dataset;
  checked.pairs = pairs;
  CheckDatasetImages(checked);

  const ProtocolSpec spec = MakeProtocol(options, dataset.scene_kind);
  const std::string pair_dir = (fs::path(output_dir) / "pairs").string();
  fs::create_directories(pair_dir);
  if (log)
    *log << "Benchmark " << dataset.name << " (" << pairs.size() << " pairs, "
         << dataset.root << "), matcher " << matcher->Name() << "\nProtocol "
         << spec.Describe() << "\n";

  std::vector<PairResult> results;
  size_t num_resumed = 0;
  Progress progress(
      "eval " + dataset.name, static_cast<int64_t>(pairs.size()), log);
  for (const EvalPair& pair : pairs) {
    const std::string file =
        (fs::path(pair_dir) / (SafeFileName(pair.name) + ".json")).string();
    bool done = false;
    if (FileExists(file)) {
      try {
        PairResult stored =
            PairResult::FromJson(nlohmann::json::parse(ReadBinaryFile(file)));
        if (stored.name == pair.name && stored.fingerprint == fingerprint) {
          results.push_back(std::move(stored));
          done = true;
          ++num_resumed;
        }
      } catch (const std::exception&) {
        // Unreadable (older layout): evaluate again and overwrite.
      }
    }
    if (!done) {
      PairResult r = EvaluatePair(
          pair, matcher, spec, static_cast<unsigned>(options.seed));
      r.fingerprint = fingerprint;
      WriteFileAtomic(file, r.ToJson().dump());
      results.push_back(std::move(r));
    }
    progress.Add();
  }
  progress.Finish();
  if (log && num_resumed > 0)
    *log << num_resumed << " of " << pairs.size() << " pairs resumed from "
         << pair_dir << "\n";

  nlohmann::json summary = SummarizeResults(results, spec);
  summary["benchmark"] = dataset.name;
  summary["data_path"] = dataset.root;
  summary["matcher"] = matcher->Name();
  summary["seed"] = options.seed;
  WriteFileAtomic((fs::path(output_dir) / "results.json").string(),
                  summary.dump(2) + "\n");
  const std::string md = MarkdownTable(summary, dataset.name, matcher->Name());
  WriteFileAtomic((fs::path(output_dir) / "results.md").string(), md);

  // Curves.
  const bool pose = spec.geometry == PairGeometry::kRelativePose;
  std::vector<ErrorCurve> curves;
  std::vector<double> all, rot, trans, gt;
  for (const PairResult& r : results) {
    all.insert(all.end(), r.errors.begin(), r.errors.end());
    rot.insert(rot.end(), r.rotation_errors.begin(), r.rotation_errors.end());
    trans.insert(
        trans.end(), r.translation_errors.begin(), r.translation_errors.end());
    if (r.gt_points_error_px >= 0) gt.push_back(r.gt_points_error_px);
  }
  const std::string title = dataset.name + " - " + matcher->Name() + " (" +
                            spec.name + ", " + spec.estimator.method + ")";
  if (pose) {
    curves.push_back({"pose error (max of R, t)", all, cv::Scalar(200, 60, 0)});
    curves.push_back({"rotation error", rot, cv::Scalar(0, 150, 0)});
    curves.push_back(
        {"translation direction error", trans, cv::Scalar(0, 0, 220)});
    DrawErrorCurves((fs::path(output_dir) / "curves.png").string(),
                    title,
                    "error threshold (deg)",
                    20.0,
                    curves);
  } else {
    curves.push_back(
        {"corner error (480 px scale)", all, cv::Scalar(200, 60, 0)});
    if (!gt.empty())
      curves.push_back(
          {"GT points transfer error (orig. px)", gt, cv::Scalar(0, 0, 220)});
    DrawErrorCurves((fs::path(output_dir) / "curves.png").string(),
                    title,
                    "error threshold (px)",
                    10.0,
                    curves);
  }

  // Worst pairs.
  std::vector<size_t> order(results.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) {
    return results[i].MeanError() > results[j].MeanError();
  });
  const std::string worst_dir = (fs::path(output_dir) / "worst_pairs").string();
  fs::create_directories(worst_dir);
  nlohmann::json worst = nlohmann::json::array();
  for (size_t k = 0;
       k < order.size() && k < static_cast<size_t>(options.num_worst_pairs);
       ++k) {
    const PairResult& r = results[order[k]];
    const std::string caption =
        r.name + ": mean error " +
        (std::isfinite(r.MeanError())
             ? Fixed(r.MeanError(), 2) + (pose ? " deg" : " px")
             : "inf") +
        ", " + std::to_string(r.num_matches) + " matches" +
        (r.precision >= 0 ? ", precision " + Fixed(100 * r.precision, 1) + "%"
                          : "") +
        " (green: correct, red: wrong)";
    const std::string png =
        (fs::path(worst_dir) /
         (std::to_string(k + 1) + "_" + SafeFileName(r.name) + ".png"))
            .string();
    DrawPairPicture(png, pairs[order[k]], r, caption);
    worst.push_back({{"name", r.name},
                     {"mean_error", ErrorToJson(r.MeanError())},
                     {"picture", png}});
  }
  summary["worst_pairs"] = worst;
  WriteFileAtomic((fs::path(output_dir) / "results.json").string(),
                  summary.dump(2) + "\n");
  if (log)
    *log << "\n"
         << md << "\nWrote " << output_dir
         << "/results.json, results.md, curves.png, worst_pairs/\n";
  return summary;
}

}  // namespace l2m
