// The action cache of RocksDbBlobStore: results by namespace and action
// digest in the `ac` column family (rocksdb_blob_store.h).
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "absl/strings/str_cat.h"
#include "blobstore/rocksdb_blob_store.h"
#include "blobstore/rocksdb_layout.h"
#include "common/status_macros.h"

namespace stagefarm {

using rocksdb_layout::ActionKey;
using rocksdb_layout::FromRocks;

absl::StatusOr<std::string> RocksDbBlobStore::GetAction(absl::string_view ns,
                                                        const Digest& action) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), ac_, ActionKey(ns, action), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("no action result for ", action.ToString()));
  }
  RETURN_IF_ERROR(FromRocks(s, "reading the action cache"));
  return value;
}

absl::Status RocksDbBlobStore::ForEachAction(
    absl::string_view ns,
    const std::function<void(absl::string_view result)>& fn) {
  // Keys start with the namespace's length and the namespace.
  const std::string prefix =
      ActionKey(ns, Digest::Empty()).substr(0, 2 + ns.size());
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), ac_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    fn(absl::string_view(it->value().data(), it->value().size()));
  }
  return FromRocks(it->status(), "reading the action cache");
}

absl::Status RocksDbBlobStore::PutAction(absl::string_view ns,
                                         const Digest& action,
                                         absl::string_view serialized_result) {
  std::string key = ActionKey(ns, action);
  std::string old;
  absl::MutexLock lock(&mu_);
  bool existed = db_->Get(rocksdb::ReadOptions(), ac_, key, &old).ok();
  rocksdb::WriteBatch batch;
  batch.Put(ac_, key,
            rocksdb::Slice(serialized_result.data(), serialized_result.size()));
  RETURN_IF_ERROR(Write(&batch, options_.sync_commits));
  if (!existed) ++ac_entries_;
  return absl::OkStatus();
}

absl::Status RocksDbBlobStore::DeleteAction(absl::string_view ns,
                                            const Digest& action) {
  std::string key = ActionKey(ns, action);
  std::string old;
  absl::MutexLock lock(&mu_);
  if (!db_->Get(rocksdb::ReadOptions(), ac_, key, &old).ok()) {
    return absl::OkStatus();
  }
  rocksdb::WriteBatch batch;
  batch.Delete(ac_, key);
  RETURN_IF_ERROR(Write(&batch, false));
  --ac_entries_;
  return absl::OkStatus();
}

}  // namespace stagefarm
