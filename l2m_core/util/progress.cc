#include "l2m_core/util/progress.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace l2m {
namespace {
std::atomic<bool> g_progress_enabled{true};
}  // namespace

void Progress::SetEnabled(bool enabled) { g_progress_enabled = enabled; }

Progress::Progress(std::string label,
                   int64_t total,
                   std::ostream* out,
                   double min_interval_s)
    : label_(std::move(label)),
      total_(total),
      out_(out != nullptr ? out : &std::cerr),
      min_interval_s_(min_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() { Finish(); }

void Progress::Add(int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_print_).count() >=
      min_interval_s_) {
    last_print_ = now;
    PrintLocked(false);
  }
}

void Progress::Finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  PrintLocked(true);
}

void Progress::PrintLocked(bool final_line) {
  if (!g_progress_enabled) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  std::string line = FormatLine(label_, done_, total_, elapsed);
  if (final_line) line += " done in " + FormatDuration(elapsed);
  (*out_) << line << std::endl;
}

std::string Progress::FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf,
                  sizeof(buf),
                  "%lldh%02lldm",
                  static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  } else if (s >= 60) {
    std::snprintf(buf,
                  sizeof(buf),
                  "%lldm%02llds",
                  static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  }
  return buf;
}

std::string Progress::FormatLine(const std::string& label,
                                 int64_t done,
                                 int64_t total,
                                 double elapsed_s) {
  char buf[256];
  const double rate = elapsed_s > 0 ? done / elapsed_s : 0.0;
  if (total > 0) {
    const double pct = 100.0 * static_cast<double>(done) / total;
    const double eta = rate > 0 ? (total - done) / rate : -1.0;
    std::snprintf(buf,
                  sizeof(buf),
                  "%s: %lld/%lld (%.1f%%) %.2f/s, ETA %s",
                  label.c_str(),
                  static_cast<long long>(done),
                  static_cast<long long>(total),
                  pct,
                  rate,
                  done >= total ? "0s" : FormatDuration(eta).c_str());
  } else {
    std::snprintf(buf,
                  sizeof(buf),
                  "%s: %lld %.2f/s",
                  label.c_str(),
                  static_cast<long long>(done),
                  rate);
  }
  return buf;
}

}  // namespace l2m
