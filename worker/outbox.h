// A stage's progress on its way to the scheduler: events not yet
// delivered, sent in reports of bounded size, and bounded themselves.
// Thread-safe.
#ifndef STAGEFARM_WORKER_OUTBOX_H_
#define STAGEFARM_WORKER_OUTBOX_H_

#include <cstdint>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::worker {

// Progress not yet delivered, sent in reports of at most kReportBytes of
// events, and bounded: past kPendingBytes (a scheduler out of reach for
// long) log chunks are dropped and the next report says how many bytes.
class Outbox {
 public:
  static constexpr size_t kReportBytes = size_t{1} << 20;
  static constexpr size_t kPendingBytes = size_t{16} << 20;

  void Add(v1::Event e) {
    absl::MutexLock lock(&mu);
    if (e.kind() == "log" && bytes + e.text().size() > kPendingBytes) {
      dropped += static_cast<int64_t>(e.text().size());
      return;
    }
    bytes += e.ByteSizeLong();
    events.push_back(std::move(e));
  }
  // Moves up to kReportBytes of events into `report`.
  void Take(v1::StageReport* report) {
    absl::MutexLock lock(&mu);
    if (dropped > 0) {
      v1::Event* note = report->add_events();
      note->set_kind("note");
      note->set_text(
          absl::StrCat(dropped,
                       " bytes of output were dropped while the scheduler "
                       "could not be reached"));
      dropped = 0;
    }
    size_t taken = 0;
    while (
        !events.empty() &&
        (taken == 0 || taken + events.front().ByteSizeLong() <= kReportBytes)) {
      size_t n = events.front().ByteSizeLong();
      taken += n;
      bytes -= n;
      *report->add_events() = std::move(events.front());
      events.pop_front();
    }
  }
  // Puts a report's events back in front (it was not delivered).
  void Return(v1::StageReport* report) {
    absl::MutexLock lock(&mu);
    auto* evs = report->mutable_events();
    for (int i = evs->size() - 1; i >= 0; --i) {
      bytes += evs->Get(i).ByteSizeLong();
      events.push_front(std::move(*evs->Mutable(i)));
    }
    evs->Clear();
  }
  bool empty() {
    absl::MutexLock lock(&mu);
    return events.empty();
  }

 private:
  absl::Mutex mu;
  std::deque<v1::Event> events ABSL_GUARDED_BY(mu);
  size_t bytes ABSL_GUARDED_BY(mu) = 0;
  int64_t dropped ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace stagefarm::worker

#endif  // STAGEFARM_WORKER_OUTBOX_H_
