#include "scheduler/stage_queue.h"

#include <utility>

namespace stagefarm::scheduler {

void StageQueue::Push(Entry entry) {
  if (!Wanted(entry).empty()) ++preferred_;
  queue_.push_back(std::move(entry));
}

std::optional<StageQueue::Entry> StageQueue::Pick(const Asker& asker,
                                                  Clock::time_point now,
                                                  const QueuedAt& queued_at,
                                                  bool* held) {
  const std::string& worker = asker.worker;
  auto take = [&](std::deque<Entry>::iterator q) {
    Entry chosen = std::move(*q);
    if (!Wanted(chosen).empty()) --preferred_;
    queue_.erase(q);
    return chosen;
  };
  std::optional<std::deque<Entry>::iterator> first_free;
  for (auto q = queue_.begin(); q != queue_.end();) {
    std::optional<Clock::time_point> at = queued_at(*q);
    if (!at) {
      // Stale: the build ended or the stage moved on.
      if (!Wanted(*q).empty()) --preferred_;
      q = queue_.erase(q);
      continue;
    }
    if (!q->avoid.empty() && q->avoid == worker) {
      ++q;  // it ran this stage the first time
      continue;
    }
    Fit fit = asker.fit && !q->platform.empty() ? asker.fit(q->platform)
                                                : Fit::kNative;
    if (fit == Fit::kNo) {
      ++q;  // another worker's
      continue;
    }
    if (fit == Fit::kEmulated && asker.native_elsewhere &&
        asker.native_elsewhere(q->platform) && now - *at < kEmulationGrace) {
      *held = true;  // a native worker may ask for it in a moment
      ++q;
      continue;
    }
    const std::string& wanted = Wanted(*q);
    if (wanted.empty()) {
      // Nothing queued prefers a worker: the oldest stage it is.
      if (preferred_ == 0) return take(q);
      if (!first_free) first_free = q;
    } else if (wanted == worker) {
      return take(q);
    } else if (now - *at < kPlacementGrace &&
               (!q->preferred.empty() || (asker.idle && asker.idle(wanted)))) {
      *held = true;  // its worker may ask for it in a moment
    } else if (!first_free) {
      first_free = q;
    }
    ++q;
  }
  if (!first_free) return std::nullopt;
  return take(*first_free);
}

void BaseAffinity::Ran(const std::string& image, const std::string& worker) {
  auto it = workers_.find(image);
  if (it != workers_.end()) {
    order_.erase(it->second.at);
    workers_.erase(it);
  }
  order_.push_front(image);
  workers_[image] = Holder{worker, order_.begin()};
  if (workers_.size() > kMaxImages) {
    workers_.erase(order_.back());
    order_.pop_back();
  }
}

std::string BaseAffinity::WorkerFor(const std::string& image) const {
  auto it = workers_.find(image);
  return it == workers_.end() ? "" : it->second.worker;
}

}  // namespace stagefarm::scheduler
