// The scheduler's queue of stages ready to run, and placement: which queued
// stage a worker that asks for work gets. A stage that needs other stages
// (FROM <stage>, COPY --from) prefers the worker that ran the biggest of
// them (build_state.h PreferredWorker), whose snapshots already hold its
// layers, and is held for it for kPlacementGrace; any other stage goes,
// oldest first, to whoever asks. While any queued stage prefers
// a worker, the others are looked at in order too.
//
// A stage FROM an image (no stage it needs has run) has an affinity
// instead: the worker that last ran a stage from the same image, which has
// its layers unpacked (BaseAffinity). It goes to that worker when it asks,
// and waits for it only while that worker is itself waiting for work (it
// is about to ask), never for a busy one.
//
// Platforms: a stage goes only to a worker that runs its platform; one that
// would emulate it is passed over for kEmulationGrace while another live
// worker runs the platform natively. A stage that names a worker to avoid
// (a reproducibility rebuild's) never goes to it.
//
// Pure logic: no locks (the scheduler calls it under its own), no gRPC, the
// time passed in. Entries name a build and a stage; whether an entry is
// still wanted (its build running, its stage still queued) is asked of the
// caller, so a stale entry is dropped when Pick meets it.
#ifndef STAGEFARM_SCHEDULER_STAGE_QUEUE_H_
#define STAGEFARM_SCHEDULER_STAGE_QUEUE_H_

#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

namespace stagefarm::scheduler {

class StageQueue {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kPlacementGrace{200};
  static constexpr std::chrono::milliseconds kEmulationGrace{1000};

  struct Entry {
    std::string build;
    int stage = -1;
    std::string preferred;  // the worker that holds most of what it needs
    std::string platform;   // what it builds for; "" = any worker
    std::string avoid;      // a worker that must not run it (a rebuild's)
    std::string affinity;   // the worker holding its base image's layers
  };

  // How the asking worker runs a platform, and whether another live
  // worker runs it natively.
  enum class Fit { kNo, kEmulated, kNative };
  struct Asker {
    std::string worker;
    std::function<Fit(const std::string& platform)> fit;
    std::function<bool(const std::string& platform)> native_elsewhere;
    // Whether a worker is waiting for work right now (null: none is).
    std::function<bool(const std::string& worker)> idle;
  };
  // When the entry's stage was queued (it is live), or nullopt (stale).
  using QueuedAt =
      std::function<std::optional<Clock::time_point>(const Entry& entry)>;

  void Push(Entry entry);

  // The stage to give `worker`, taken off the queue: the first one that
  // prefers it, else the oldest that prefers no one (or whose preferred
  // worker did not come within the grace). Sets *held when a stage waits
  // for another worker, so the caller looks again soon.
  std::optional<Entry> Pick(const Asker& asker, Clock::time_point now,
                            const QueuedAt& queued_at, bool* held);
  // A worker that runs every platform natively.
  std::optional<Entry> Pick(const std::string& worker, Clock::time_point now,
                            const QueuedAt& queued_at, bool* held) {
    return Pick(Asker{worker, nullptr, nullptr, nullptr}, now, queued_at, held);
  }

  size_t size() const { return queue_.size(); }

 private:
  // The worker an entry goes to first, if any.
  static const std::string& Wanted(const Entry& e) {
    return e.preferred.empty() ? e.affinity : e.preferred;
  }
  std::deque<Entry> queue_;
  size_t preferred_ = 0;  // entries with a preferred worker or an affinity
};

// Which worker last ran a stage from each base image (by a key the caller
// makes: tenant, platform and image reference). Bounded: past kMaxImages
// the image recorded longest ago is forgotten.
class BaseAffinity {
 public:
  static constexpr size_t kMaxImages = 10000;
  void Ran(const std::string& image, const std::string& worker);
  // "" when no worker ran a stage from it (or it was forgotten).
  std::string WorkerFor(const std::string& image) const;
  size_t size() const { return workers_.size(); }

 private:
  std::list<std::string> order_;  // images, most recently recorded first
  struct Holder {
    std::string worker;
    std::list<std::string>::iterator at;
  };
  std::unordered_map<std::string, Holder> workers_;
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_STAGE_QUEUE_H_
