#include "common/rocksdb_support.h"

#include <rocksdb/listener.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>

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

bool DiskFullRecovery::TryResume(rocksdb::DB* db) {
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  if (listener_->log_write_failed()) return false;
  int64_t last = last_try_ns_.load();
  if (now - last < 100'000'000 ||
      !last_try_ns_.compare_exchange_strong(last, now)) {
    return false;
  }
  struct statvfs vfs;
  if (statvfs(dir_.c_str(), &vfs) != 0) return false;
  uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  uint64_t memtables = 0;
  (void)db->GetIntProperty("rocksdb.cur-size-all-mem-tables", &memtables);
  if (free_bytes < memtables + memtables / 4 + (uint64_t{4} << 20)) {
    return false;
  }
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
