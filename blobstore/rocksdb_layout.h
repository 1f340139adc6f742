// RocksDbBlobStore's on-disk encoding (blobstore/ internal): key layouts,
// the blob record, and RocksDB errors turned into ours. docs/ARCHITECTURE.md
// ("RocksDB layout") describes the format these write.
#ifndef STAGEFARM_BLOBSTORE_ROCKSDB_LAYOUT_H_
#define STAGEFARM_BLOBSTORE_ROCKSDB_LAYOUT_H_

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/rocksdb_support.h"
#include "common/sha256.h"
#include "stagefarm/v1/cas.pb.h"

namespace stagefarm::rocksdb_layout {

constexpr size_t kMaxHashStates = 1024;

// RocksDB's errors name the database's files: callers get what happened
// and what to do; the full error goes to the server's log.
inline absl::Status FromRocks(const rocksdb::Status& s,
                              absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound())
    return absl::NotFoundError(absl::StrCat(what, ": not found"));
  LogError(absl::StrCat(what, ": ", s.ToString()), {{"component", "cas"}});
  if (IsDiskFull(s)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what,
        ": the CAS's disk is full; free space on its volume or lower "
        "its --max-bytes (writes work again as soon as there is room)"));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(absl::StrCat(
        what, ": the CAS database is corrupt (details in the CAS's log)"));
  }
  return absl::InternalError(
      absl::StrCat(what, ": storage error in the CAS (details in its log)"));
}

inline void AppendBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

inline uint64_t ReadBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

inline std::string ChunkKey(uint64_t data_id, uint64_t offset) {
  std::string key;
  key.reserve(16);
  AppendBigEndian64(data_id, &key);
  AppendBigEndian64(offset, &key);
  return key;
}

inline std::string IdKey(uint64_t data_id) {
  std::string key;
  AppendBigEndian64(data_id, &key);
  return key;
}

inline rocksdb::Slice RawSlice(const Sha256::Raw& raw) {
  return rocksdb::Slice(reinterpret_cast<const char*>(raw.data()), raw.size());
}

inline std::string VisibleKey(const Sha256::Raw& raw, absl::string_view ns) {
  std::string key(reinterpret_cast<const char*>(raw.data()), raw.size());
  key.append(ns.data(), ns.size());
  return key;
}

inline std::string ActionKey(absl::string_view ns, const Digest& action) {
  std::string key;
  key.push_back(static_cast<char>((ns.size() >> 8) & 0xff));
  key.push_back(static_cast<char>(ns.size() & 0xff));
  key.append(ns.data(), ns.size());
  key.append(action.raw_view().data(), action.raw_view().size());
  AppendBigEndian64(static_cast<uint64_t>(action.size()), &key);
  return key;
}

inline std::string EncodeBlobRecord(int64_t size, uint64_t data_id,
                                    int64_t atime) {
  v1::BlobRecord record;
  record.set_size_bytes(size);
  record.set_data_id(data_id);
  record.set_last_access_micros(atime);
  return record.SerializeAsString();
}

// Deletes every chunk of `data_id`.
inline void DeleteChunks(rocksdb::WriteBatch* batch,
                         rocksdb::ColumnFamilyHandle* cf, uint64_t data_id) {
  batch->DeleteRange(cf, IdKey(data_id), IdKey(data_id + 1));
}

}  // namespace stagefarm::rocksdb_layout

#endif  // STAGEFARM_BLOBSTORE_ROCKSDB_LAYOUT_H_
