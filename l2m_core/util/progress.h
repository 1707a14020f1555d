#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <ostream>
#include <string>

namespace l2m {

// Prints "label: done/total (pct) rate/s, ETA" for long stages, at most every
// `min_interval_s` seconds, and a final line on Finish(). Thread-safe.
class Progress {
 public:
  Progress(std::string label,
           int64_t total,
           std::ostream* out = nullptr,
           double min_interval_s = 1.0);
  ~Progress();

  void Add(int64_t n = 1);
  // Globally silences progress lines (--log_level above info).
  static void SetEnabled(bool enabled);
  void Finish();

  int64_t done() const { return done_; }
  int64_t total() const { return total_; }

  // "1h02m", "3m05s", "12s": what a person reads in an ETA.
  static std::string FormatDuration(double seconds);
  // The line that Add() prints, for the given state (exposed for tests).
  static std::string FormatLine(const std::string& label,
                                int64_t done,
                                int64_t total,
                                double elapsed_s);

 private:
  void PrintLocked(bool final_line);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::ostream* out_;
  double min_interval_s_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  std::mutex mutex_;
};

// Wall-clock seconds since construction.
class Timer {
 public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  double ElapsedSeconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start_)
        .count();
  }
  void Restart() { start_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace l2m
