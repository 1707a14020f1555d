#include "l2m_core/train/pair_prefetcher.h"

#include <algorithm>
#include <chrono>

namespace l2m {

PairPrefetcher::PairPrefetcher(std::shared_ptr<const PairSource> source,
                               int num_workers,
                               int capacity,
                               int64_t first_index)
    : source_(std::move(source)),
      capacity_(std::max(1, capacity)),
      next_(first_index),
      scheduled_(first_index) {
  for (int i = 0; i < std::max(1, num_workers); ++i) {
    workers_.emplace_back([this] { Work(); });
  }
}

PairPrefetcher::~PairPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void PairPrefetcher::Work() {
  while (true) {
    int64_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || scheduled_ < next_ + capacity_; });
      if (stop_) return;
      index = scheduled_++;
    }
    Slot slot;
    try {
      slot.pair = source_->Get(index);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[index] = std::move(slot);
    }
    cv_.notify_all();
  }
}

TrainingPair PairPrefetcher::Next(double* waited_s) {
  const auto start = std::chrono::steady_clock::now();
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return ready_.count(next_) > 0; });
    auto it = ready_.find(next_);
    slot = std::move(it->second);
    ready_.erase(it);
    ++next_;
  }
  cv_.notify_all();
  if (waited_s != nullptr) {
    *waited_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.pair);
}

}  // namespace l2m
