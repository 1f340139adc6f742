// The stages a worker process holds, one file each under a directory of
// its work directory (WORK/leases), written before and as each step starts.
// A process that dies leaves them; the next process of the same work
// directory reads them and tells the scheduler what its predecessor died
// running. Thread-safe (files only, each written atomically).
#ifndef STAGEFARM_WORKER_LEASE_FILES_H_
#define STAGEFARM_WORKER_LEASE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::worker {

class LeaseFiles {
 public:
  explicit LeaseFiles(std::string dir) : dir_(std::move(dir)) {}

  // Notes `held` (its lease's file replaced whole).
  absl::Status Note(const v1::HeldStage& held) const;
  // The lease is over: its file goes.
  void Forget(const std::string& lease_id) const;
  // What a previous process left: every readable file's stage; unreadable
  // ones (a partial write of a dying process) are removed. The files stay
  // until Forget.
  std::vector<v1::HeldStage> Leftovers() const;

 private:
  std::string PathOf(const std::string& lease_id) const;
  std::string dir_;
};

}  // namespace stagefarm::worker

#endif  // STAGEFARM_WORKER_LEASE_FILES_H_
