#pragma once

#include "l2m_core/train/pair_source.h"

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// Generates the pairs of a sequential index stream on worker threads, ahead
// of the trainer. Pairs are deterministic in their index, so the stream is
// the same for any number of workers and after a resume.

namespace l2m {

class PairPrefetcher {
 public:
  // Starts at pair `first_index`, keeping up to `capacity` pairs in flight.
  PairPrefetcher(std::shared_ptr<const PairSource> source,
                 int num_workers,
                 int capacity,
                 int64_t first_index);
  ~PairPrefetcher();
  PairPrefetcher(const PairPrefetcher&) = delete;
  PairPrefetcher& operator=(const PairPrefetcher&) = delete;

  // The next pair of the stream (blocks until it is ready); rethrows the
  // source's exception for that pair. `waited_s` gets the blocking time.
  TrainingPair Next(double* waited_s = nullptr);
  int64_t next_index() const { return next_; }

 private:
  void Work();

  std::shared_ptr<const PairSource> source_;
  int capacity_;
  int64_t next_;       // next index handed to the consumer
  int64_t scheduled_;  // next index a worker will take
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  struct Slot {
    TrainingPair pair;
    std::exception_ptr error;
  };
  std::map<int64_t, Slot> ready_;
  std::vector<std::thread> workers_;
};

}  // namespace l2m
