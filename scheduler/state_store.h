// The scheduler's --state: builds (v1::StoredBuild records), their events
// and the farm's image index in a RocksDB of its own.
//
// Keys: "build/<id>" -> StoredBuild; "event/<id>/<seq, 10 digits>" ->
// Event; "image/<instance, hex>/<name>" -> ImageTag.
//
// Each write is one atomic batch. A write that fails for want of space is
// RESOURCE_EXHAUSTED (DiskFullError) and marks the store failed: every
// write is refused the same way until Reopen finds room and opens the
// database again. Not thread-safe: the scheduler calls it under its lock.
#ifndef STAGEFARM_SCHEDULER_STATE_STORE_H_
#define STAGEFARM_SCHEDULER_STATE_STORE_H_

#include <rocksdb/db.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "stagefarm/v1/farm.pb.h"

namespace rocksdb {
class WriteBatch;
}

namespace stagefarm::scheduler {

class StateStore {
 public:
  // Opens (creating) the database in `dir`.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& dir);

  struct StoredBuildEvents {
    v1::StoredBuild build;
    std::vector<v1::Event> events;  // the first build.events() kept
  };
  struct Contents {
    std::vector<StoredBuildEvents> builds;
    std::vector<std::pair<std::string, v1::ImageTag>> images;  // instance
  };
  // Everything stored. An unreadable record is DATA_LOSS naming its key.
  absl::StatusOr<Contents> Load();

  // The build's record and its events from `first_new` on.
  absl::Status PutBuild(const v1::StoredBuild& build,
                        absl::Span<const v1::Event> events, size_t first_new);
  absl::Status DropBuild(const std::string& id);
  absl::Status PutImage(const std::string& instance, const v1::ImageTag& tag);
  absl::Status DropImage(const std::string& instance, const std::string& name);

  // A write failed for want of space and the database is not open again.
  bool failed() const { return failed_; }
  // After a failed write: when the volume has room again (looked at most
  // every 100 ms), closes and opens the database. True once writes work.
  bool Reopen();
  // Counts a write refused while failed; returns DiskFullError().
  absl::Status Refuse();
  int64_t disk_full_errors() const { return disk_full_errors_.load(); }

  static absl::Status DiskFullError();

 private:
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Write(rocksdb::WriteBatch* batch, const std::string& what);

  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  bool failed_ = false;
  std::chrono::steady_clock::time_point last_reopen_;
  std::atomic<int64_t> disk_full_errors_{0};
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_STATE_STORE_H_
