#include "scheduler/state_store.h"

#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/rocksdb_support.h"

namespace stagefarm::scheduler {
namespace {

// Builds and their (bounded) logs are small: an 8 MiB memtable keeps the
// memory and the preallocated log file (1.1 times it) small.
constexpr uint64_t kMemtableBytes = 8 << 20;

rocksdb::Options StateOptions() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.max_open_files = 256;
  o.write_buffer_size = kMemtableBytes;
  // RocksDB's log in ours; after a full disk, recovery is ours too
  // (Reopen).
  o.info_log = RocksDbLogger("scheduler-state");
  o.listeners.push_back(RecoverOnNextWrite());
  return o;
}

std::string BuildKey(const std::string& id) { return "build/" + id; }
std::string ImageKey(const std::string& instance, const std::string& name) {
  return absl::StrCat("image/", absl::BytesToHexString(instance), "/", name);
}
std::string EventPrefix(const std::string& id) { return "event/" + id + "/"; }
std::string EventKey(const std::string& id, size_t seq) {
  char buf[24];
  snprintf(buf, sizeof(buf), "%010zu", seq);
  return EventPrefix(id) + buf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(
    const std::string& dir) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(StateOptions(), dir, &raw);
  if (!rs.ok()) {
    return absl::UnavailableError(
        absl::StrCat("--state ", dir, ": cannot open: ", rs.ToString()));
  }
  std::unique_ptr<StateStore> store(new StateStore(dir));
  store->db_.reset(raw);
  return store;
}

absl::StatusOr<StateStore::Contents> StateStore::Load() {
  Contents out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}));
  for (it->Seek("build/"); it->Valid() && it->key().starts_with("build/");
       it->Next()) {
    StoredBuildEvents b;
    if (!b.build.ParseFromArray(it->value().data(),
                                static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat(
          "--state ", dir_, ": unreadable record ", it->key().ToString()));
    }
    std::unique_ptr<rocksdb::Iterator> ev(db_->NewIterator({}));
    std::string prefix = EventPrefix(b.build.build_id());
    for (ev->Seek(prefix);
         ev->Valid() && ev->key().starts_with(prefix) &&
         b.events.size() < static_cast<size_t>(b.build.events());
         ev->Next()) {
      v1::Event e;
      if (!e.ParseFromArray(ev->value().data(),
                            static_cast<int>(ev->value().size()))) {
        return absl::DataLossError(absl::StrCat(
            "--state ", dir_, ": unreadable event ", ev->key().ToString()));
      }
      b.events.push_back(std::move(e));
    }
    out.builds.push_back(std::move(b));
  }
  if (!it->status().ok()) {
    return absl::UnavailableError(
        absl::StrCat("--state ", dir_, ": ", it->status().ToString()));
  }
  for (it->Seek("image/"); it->Valid() && it->key().starts_with("image/");
       it->Next()) {
    std::string key = it->key().ToString();
    size_t slash = key.find('/', 6);
    v1::ImageTag tag;
    if (slash == std::string::npos ||
        !tag.ParseFromArray(it->value().data(),
                            static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("--state ", dir_, ": unreadable record ", key));
    }
    out.images.emplace_back(absl::HexStringToBytes(key.substr(6, slash - 6)),
                            std::move(tag));
  }
  return out;
}

absl::Status StateStore::PutBuild(const v1::StoredBuild& build,
                                  absl::Span<const v1::Event> events,
                                  size_t first_new) {
  rocksdb::WriteBatch batch;
  for (size_t i = first_new; i < events.size(); ++i) {
    batch.Put(EventKey(build.build_id(), i), events[i].SerializeAsString());
  }
  batch.Put(BuildKey(build.build_id()), build.SerializeAsString());
  return Write(&batch, absl::StrCat("cannot record build ", build.build_id()));
}

absl::Status StateStore::DropBuild(const std::string& id) {
  rocksdb::WriteBatch batch;
  batch.Delete(BuildKey(id));
  std::string prefix = EventPrefix(id);
  batch.DeleteRange(prefix, prefix.substr(0, prefix.size() - 1) + "0");
  return Write(&batch, absl::StrCat("cannot drop build ", id));
}

absl::Status StateStore::PutImage(const std::string& instance,
                                  const v1::ImageTag& tag) {
  rocksdb::WriteBatch batch;
  batch.Put(ImageKey(instance, tag.name()), tag.SerializeAsString());
  return Write(&batch, "cannot record the image");
}

absl::Status StateStore::DropImage(const std::string& instance,
                                   const std::string& name) {
  rocksdb::WriteBatch batch;
  batch.Delete(ImageKey(instance, name));
  return Write(&batch, "cannot remove the image");
}

absl::Status StateStore::Write(rocksdb::WriteBatch* batch,
                               const std::string& what) {
  if (failed_ || db_ == nullptr) return Refuse();
  rocksdb::Status rs = db_->Write(rocksdb::WriteOptions(), batch);
  if (rs.ok()) return absl::OkStatus();
  LogError(absl::StrCat(what, " in --state ", dir_, ": ", rs.ToString()));
  if (IsDiskFull(rs)) {
    // Nothing of the batch was written; builds go on in memory and are
    // written whole once the database is open again (Reopen).
    failed_ = true;
    ++disk_full_errors_;
    return DiskFullError();
  }
  return absl::UnavailableError(
      absl::StrCat(what,
                   ": the scheduler cannot write its state (details "
                   "in its log)"));
}

bool StateStore::Reopen() {
  auto now = std::chrono::steady_clock::now();
  if (now - last_reopen_ < std::chrono::milliseconds(100)) return false;
  last_reopen_ = now;
  struct statvfs vfs;
  if (statvfs(dir_.c_str(), &vfs) != 0 ||
      static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize <
          2 * kMemtableBytes + (uint64_t{4} << 20)) {
    return false;
  }
  // A database whose log failed to write is closed and opened again (the
  // log replayed) rather than resumed: RocksDB 7.8 can abort the process
  // when it appends to a log file after a failed write.
  db_.reset();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(StateOptions(), dir_, &raw);
  if (!rs.ok()) {
    LogError("cannot open --state again: " + rs.ToString());
    return false;
  }
  db_.reset(raw);
  failed_ = false;
  LogInfo("the state's disk has room again: builds are recorded again");
  return true;
}

absl::Status StateStore::Refuse() {
  ++disk_full_errors_;
  return DiskFullError();
}

absl::Status StateStore::DiskFullError() {
  return absl::ResourceExhaustedError(
      "the scheduler's disk is full: free space on the volume of its "
      "--state directory (builds are recorded again as soon as there is "
      "room)");
}

}  // namespace stagefarm::scheduler
