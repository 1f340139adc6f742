// The worker daemon as a library: `stagefarm-worker` (worker/main.cc) is
// its flags and signals around it. Each of --slots threads leases a stage,
// writes the build context from the CAS into the work directory (kept per
// context digest), runs the stage with the build engine against the CAS
// (blobs, layers and the action cache live there; layer snapshots stay on
// this machine), reports progress as it goes (the lease's heartbeat) and
// the stage's result; for the target stage it also makes the image.
#ifndef STAGEFARM_WORKER_WORKER_H_
#define STAGEFARM_WORKER_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/metrics.h"

namespace stagefarm::worker {

struct WorkerFlags {
  std::string scheduler, cas, work, name, runtime = "runc";
  int slots = 1;
  // Unpacked layers kept on disk, across instances; the least recently
  // used go first when a stage ends above it.
  int64_t cache_bytes = int64_t{20} << 30;
  // What an instance's shared cache mounts (RUN --mount=type=cache) hold
  // together in the CAS; past it the least recently published are pruned
  // (cachemount/cache_index.h). 0: no bound.
  int64_t cache_mount_bytes = int64_t{10} << 30;
  // Input files of REAPI actions kept on disk per instance (hard-linked
  // into actions' input roots; remoteexec/file_cache.h).
  int64_t action_cache_bytes = int64_t{10} << 30;
  // Free bytes the work directory's volume must have for a slot to lease.
  int64_t min_free_bytes = int64_t{512} << 20;
  // The platforms offered to the scheduler, natively and under emulation
  // (normalized; main fills them from --platforms).
  std::vector<std::string> native_platforms, emulated_platforms;
  // RUN steps' network: "private" (a namespace each, behind a bridge with
  // NAT; executor/sandbox_network.h) or "host" (the worker's own, for
  // machines without iptables). Sandboxes never reach the scheduler's and
  // the CAS's addresses, nor those in `sandbox_deny`.
  std::string step_network = "private";
  // Runs as root of a user namespace (executor/rootless.h): steps in
  // rootless runc, their private network through slirp4netns.
  bool rootless = false;
  std::string sandbox_pool = "10.213.0.0/16";
  std::vector<std::string> sandbox_deny;
  // RUN --network=host runs when the build has the network.host
  // entitlement (--allow-insecure-entitlement network.host).
  bool permit_host_network = false;
  // Test only (--test-crash-on-step-containing): the process aborts when a
  // step whose instruction contains this starts, as a worker killed by a
  // bug or the OOM killer would end. Empty: never.
  std::string test_crash_marker;
};

class WorkerDaemon {
 public:
  // `stop` set: slots finish their stage's report and return.
  static std::unique_ptr<WorkerDaemon> Create(WorkerFlags flags,
                                              const std::atomic<bool>* stop);
  virtual ~WorkerDaemon() = default;
  // The executor and the channels.
  virtual absl::Status Init() = 0;
  // Opens every instance with snapshots on disk (a restarted worker keeps
  // its layer cache) and brings the cache within its bound.
  virtual absl::Status OpenExistingInstances() = 0;
  // One slot: leases and runs stages until `stop`.
  virtual void Slot() = 0;
  // Holds the scheduler's Attend stream for this process's life (the
  // scheduler sees the process die when it closes), reopening it when it
  // breaks, and tells it of the stages a previous process of this work
  // directory held when it ended; returns after StopAttending.
  virtual void Attend() = 0;
  // Ends Attend; called once the slots have returned (no stage is held).
  virtual void StopAttending() = 0;
  // Logs when the scheduler is first reached (operators and tests wait for
  // it).
  virtual void SayWhenConnected() = 0;
  // The worker's gauges and counters on `m`.
  virtual void RegisterMetrics(Metrics* m) = 0;
};

}  // namespace stagefarm::worker

#endif  // STAGEFARM_WORKER_WORKER_H_
