// What the processes that keep state in a RocksDB (the CAS's store, the
// scheduler's --state) share about it: one test of "the disk is full", and
// where RocksDB's own log goes.
#ifndef STAGEFARM_COMMON_ROCKSDB_SUPPORT_H_
#define STAGEFARM_COMMON_ROCKSDB_SUPPORT_H_

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/status.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace stagefarm {

// A write failed for want of disk space (RocksDB reports ENOSPC as NoSpace,
// and keeps the error as its background error until it has recovered).
bool IsDiskFull(const rocksdb::Status& s);

// RocksDB's info log, sent to the program's log (common/log.h) at warning
// level and above instead of a LOG file beside the data: that file shares
// the data's disk, and RocksDB 7.8 aborts the process when it writes to it
// again after a write failed on a full disk. `errors_only` keeps warnings
// (write stalls, slow flushes) out: for a short-lived command whose log is
// the user's terminal.
std::shared_ptr<rocksdb::Logger> RocksDbLogger(std::string component,
                                               bool errors_only = false);

// After a write fails on a full disk RocksDB refuses every write until it
// recovers, which it tries on its own every five seconds. With this
// listener it leaves recovery to its owner (DiskFullRecovery), so writes
// work again as soon as there is room.
std::shared_ptr<rocksdb::EventListener> RecoverOnNextWrite();

// Brings a database opened with RecoverOnNextWrite() back after its disk
// was full. Thread-safe.
class DiskFullRecovery {
 public:
  explicit DiskFullRecovery(std::string dir);
  // Add to the database's options before opening it (in place of
  // RecoverOnNextWrite()).
  std::shared_ptr<rocksdb::EventListener> listener();
  // Call after a write failed with IsDiskFull(): whether the database
  // takes writes again. Looks at most every 100 ms; calls DB::Resume()
  // only after a failed flush (a failed log write is left to RocksDB's own
  // recovery: Resume() never returns after one in RocksDB 7.8) and only
  // when the volume has room for the memtables Resume() flushes.
  bool TryResume(rocksdb::DB* db);
  // Whether the volume has room for a write of `bytes` and then for
  // flushing every memtable (their size and 4 MiB); NoSpace saying what is
  // free when not. When the write does not fit, `cfs` (the database's
  // column families) are flushed first when the memtables fit: that frees
  // the logs that hold them, so the disk fills up to the margin (a flush
  // already running is waited for, a second at most). Writes refused here
  // keep the database out of RocksDB's disk-full state, from which RocksDB
  // 7.8 does not always come back on its own (a log write that failed
  // after a failed flush leaves nobody to recover it). Exact near a full
  // disk, looked at every 100 ms when there is plenty of room.
  rocksdb::Status CheckRoom(
      rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
      uint64_t bytes);

  class Listener;

 private:
  // What the volume has free, and what flushing the memtables needs.
  uint64_t FreeBytes() const;
  static uint64_t FlushReserve(rocksdb::DB* db);
  rocksdb::Status NoRoom(uint64_t free_bytes, uint64_t bytes,
                         uint64_t reserve) const;

  std::string dir_;
  std::atomic<int64_t> roomy_until_ns_{0};
  std::shared_ptr<Listener> listener_;
  std::atomic<int64_t> last_try_ns_{0};
  absl::Mutex mu_;        // one Resume() at a time
  absl::Mutex flush_mu_;  // one flush for room at a time
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_ROCKSDB_SUPPORT_H_
