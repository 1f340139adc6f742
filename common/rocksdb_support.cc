#include "common/rocksdb_support.h"

#include <rocksdb/listener.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace stagefarm {

bool IsDiskFull(const rocksdb::Status& s) {
  return s.IsNoSpace() ||
         s.ToString().find("No space left on device") != std::string::npos;
}

namespace {

class ForwardingLogger : public rocksdb::Logger {
 public:
  ForwardingLogger(std::string component, rocksdb::InfoLogLevel level)
      : rocksdb::Logger(level), component_(std::move(component)) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[2048];
    vsnprintf(buf, sizeof(buf), format, ap);
    // Opening a new database logs its missing directory as an error.
    if (strstr(buf, "Error when reading") != nullptr &&
        strstr(buf, "NotFound") != nullptr) {
      return;
    }
    Log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? "error" : "warn",
        std::string("rocksdb: ") + buf, {{"component", component_}});
  }

 private:
  std::string component_;
};

class NoAutoRecovery : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }
};

}  // namespace

// Recovery from a failed flush is the owner's (TryResume); from a failed
// log write, RocksDB's own.
class DiskFullRecovery::Listener : public rocksdb::EventListener {
 public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status*) override {
    if (reason == rocksdb::BackgroundErrorReason::kWriteCallback) {
      log_write_failed_ = true;
    }
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason,
                            rocksdb::Status, bool* auto_recovery) override {
    if (reason != rocksdb::BackgroundErrorReason::kWriteCallback &&
        !log_write_failed_) {
      *auto_recovery = false;
    }
  }
  void OnErrorRecoveryCompleted(rocksdb::Status) override {
    log_write_failed_ = false;
  }
  bool log_write_failed() const { return log_write_failed_; }

 private:
  std::atomic<bool> log_write_failed_{false};
};

DiskFullRecovery::DiskFullRecovery(std::string dir)
    : dir_(std::move(dir)), listener_(std::make_shared<Listener>()) {}

std::shared_ptr<rocksdb::EventListener> DiskFullRecovery::listener() {
  return listener_;
}

std::shared_ptr<rocksdb::EventListener> RecoverOnNextWrite() {
  return std::make_shared<NoAutoRecovery>();
}

namespace {
// Room kept beside the memtables' size: a flush's table and index blocks,
// the manifest, a new log file's first writes.
constexpr uint64_t kFlushMargin = uint64_t{4} << 20;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

uint64_t DiskFullRecovery::FreeBytes() const {
  struct statvfs vfs;
  if (statvfs(dir_.c_str(), &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

uint64_t DiskFullRecovery::FlushReserve(rocksdb::DB* db) {
  uint64_t memtables = 0;
  (void)db->GetAggregatedIntProperty("rocksdb.cur-size-all-mem-tables",
                                     &memtables);
  return memtables + kFlushMargin;
}

rocksdb::Status DiskFullRecovery::CheckRoom(
    rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs,
    uint64_t bytes) {
  // Far from full, a look every 100 ms is enough: no write between two
  // looks comes near the margin.
  constexpr uint64_t kMargin = uint64_t{1} << 30;
  int64_t now = NowNs();
  if (now < roomy_until_ns_.load(std::memory_order_relaxed)) {
    return rocksdb::Status::OK();
  }
  uint64_t free_bytes = FreeBytes();
  uint64_t reserve = FlushReserve(db);
  if (free_bytes >= bytes + reserve + kMargin) {
    roomy_until_ns_.store(now + 100'000'000, std::memory_order_relaxed);
  }
  if (free_bytes >= bytes + reserve) return rocksdb::Status::OK();
  if (cfs.empty()) return NoRoom(free_bytes, bytes, reserve);
  absl::MutexLock lock(&flush_mu_);
  // A flush that runs now has taken part of its table's room and counts
  // its memtable too: wait for it (a second at most) before judging.
  for (int i = 0; i < 100; ++i) {
    uint64_t running = 0;
    if (!db->GetIntProperty("rocksdb.num-running-flushes", &running) ||
        running == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  free_bytes = FreeBytes();
  reserve = FlushReserve(db);
  uint64_t memtables = reserve - kFlushMargin;
  if (free_bytes < bytes + reserve && free_bytes >= memtables &&
      memtables >= (uint64_t{1} << 20)) {
    // The memtables fit in what is free (their size counts their arenas,
    // more than their tables take), but not beside this write and the
    // margin: flush them into tables, which frees the logs that hold them.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    fo.allow_write_stall = true;
    rocksdb::Status s = db->Flush(fo, cfs);
    if (!s.ok()) return s;
    free_bytes = FreeBytes();
    reserve = FlushReserve(db);
  }
  if (free_bytes >= bytes + reserve) return rocksdb::Status::OK();
  return NoRoom(free_bytes, bytes, reserve);
}

rocksdb::Status DiskFullRecovery::NoRoom(uint64_t free_bytes, uint64_t bytes,
                                         uint64_t reserve) const {
  return rocksdb::Status::NoSpace(absl::StrCat(
      free_bytes, " bytes free in ", dir_, "; a write of ", bytes,
      " bytes needs ", bytes + reserve, " (room to flush the memtables)"));
}

bool DiskFullRecovery::TryResume(rocksdb::DB* db) {
  int64_t now = NowNs();
  if (listener_->log_write_failed()) return false;
  int64_t last = last_try_ns_.load();
  if (now - last < 100'000'000 ||
      !last_try_ns_.compare_exchange_strong(last, now)) {
    return false;
  }
  if (FreeBytes() < FlushReserve(db)) return false;
  absl::MutexLock lock(&mu_);
  rocksdb::Status s = db->Resume();
  if (s.ok()) {
    Log("info", "the disk has room again: writes resume",
        {{"component", dir_}});
  }
  return s.ok();
}

std::shared_ptr<rocksdb::Logger> RocksDbLogger(std::string component,
                                               bool errors_only) {
  return std::make_shared<ForwardingLogger>(
      std::move(component), errors_only ? rocksdb::InfoLogLevel::ERROR_LEVEL
                                        : rocksdb::InfoLogLevel::WARN_LEVEL);
}

}  // namespace stagefarm
