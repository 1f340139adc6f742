#include "blobstore/memory_blob_store.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace stagefarm {
namespace {

class StringReader : public BlobReader {
 public:
  StringReader(std::shared_ptr<const std::string> data, int64_t pos,
               int64_t end)
      : data_(std::move(data)), pos_(pos), end_(end) {}
  absl::StatusOr<size_t> Read(size_t max_bytes, std::string* out) override {
    size_t n = static_cast<size_t>(
        std::min<int64_t>(static_cast<int64_t>(max_bytes), end_ - pos_));
    out->append(*data_, static_cast<size_t>(pos_), n);
    pos_ += static_cast<int64_t>(n);
    return n;
  }

 private:
  std::shared_ptr<const std::string> data_;
  int64_t pos_;
  int64_t end_;
};

}  // namespace

class MemoryBlobStore::Writer : public BlobWriter {
 public:
  Writer(MemoryBlobStore* store, std::string ns, Digest digest,
         std::string upload_key, std::string data, bool complete)
      : store_(store),
        ns_(std::move(ns)),
        digest_(std::move(digest)),
        upload_key_(std::move(upload_key)),
        data_(std::move(data)),
        complete_(complete) {}
  ~Writer() override {
    if (complete_ || done_ || upload_key_.empty()) return;
    absl::MutexLock lock(&store_->mu_);
    store_->uploads_[upload_key_] = {digest_, std::move(data_)};
  }
  int64_t committed_bytes() const override {
    return complete_ ? digest_.size() : static_cast<int64_t>(data_.size());
  }
  bool already_complete() const override { return complete_; }
  absl::Status Write(int64_t offset, absl::string_view data) override {
    if (complete_ || done_) {
      return data.empty() ? absl::OkStatus()
                          : absl::FailedPreconditionError("already complete");
    }
    if (offset != static_cast<int64_t>(data_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "write_offset: expected ", data_.size(), ", got ", offset));
    }
    if (static_cast<int64_t>(data_.size() + data.size()) > digest_.size()) {
      done_ = true;
      return absl::InvalidArgumentError("data: exceeds the digest's size");
    }
    data_.append(data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    if (complete_) return absl::OkStatus();
    if (static_cast<int64_t>(data_.size()) != digest_.size()) {
      return absl::InvalidArgumentError("finish_write before the full size");
    }
    done_ = true;
    if (Digest::Of(data_) != digest_) {
      return absl::DataLossError("uploaded data does not match the digest");
    }
    absl::MutexLock lock(&store_->mu_);
    store_->blobs_[{ns_, digest_}] =
        std::make_shared<const std::string>(std::move(data_));
    return absl::OkStatus();
  }

 private:
  MemoryBlobStore* store_;
  std::string ns_;
  Digest digest_;
  std::string upload_key_;
  std::string data_;
  bool complete_;
  bool done_ = false;
};

absl::StatusOr<std::vector<Digest>> MemoryBlobStore::FindMissing(
    absl::string_view ns, absl::Span<const Digest> digests) {
  absl::MutexLock lock(&mu_);
  std::vector<Digest> missing;
  absl::flat_hash_set<Digest> seen;
  for (const Digest& d : digests) {
    if (d.is_empty_blob() || !seen.insert(d).second) continue;
    if (!blobs_.count({std::string(ns), d})) missing.push_back(d);
  }
  return missing;
}

std::vector<absl::Status> MemoryBlobStore::PutBatch(
    absl::string_view ns,
    absl::Span<const std::pair<Digest, absl::string_view>> blobs) {
  std::vector<absl::Status> results;
  absl::MutexLock lock(&mu_);
  for (const auto& [digest, data] : blobs) {
    if (Digest::Of(data) != digest) {
      results.push_back(absl::DataLossError("data does not match the digest"));
      continue;
    }
    blobs_[{std::string(ns), digest}] =
        std::make_shared<const std::string>(data);
    results.push_back(absl::OkStatus());
  }
  return results;
}

absl::StatusOr<std::unique_ptr<BlobReader>> MemoryBlobStore::OpenRead(
    absl::string_view ns, const Digest& digest, int64_t offset, int64_t limit) {
  if (offset < 0 || offset > digest.size()) {
    return absl::OutOfRangeError("read_offset outside the blob");
  }
  if (limit < 0) return absl::InvalidArgumentError("read_limit: negative");
  int64_t end =
      limit == 0 ? digest.size() : std::min(digest.size(), offset + limit);
  if (digest.is_empty_blob()) {
    return std::unique_ptr<BlobReader>(
        new StringReader(std::make_shared<const std::string>(), 0, 0));
  }
  absl::MutexLock lock(&mu_);
  auto it = blobs_.find({std::string(ns), digest});
  if (it == blobs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("blob ", digest.ToString(), " not found"));
  }
  return std::unique_ptr<BlobReader>(new StringReader(it->second, offset, end));
}

absl::StatusOr<std::unique_ptr<BlobWriter>> MemoryBlobStore::OpenWrite(
    absl::string_view ns, const Digest& digest, absl::string_view upload_key) {
  std::string key = upload_key.empty()
                        ? ""
                        : absl::StrCat(ns, std::string(1, '\0'), upload_key);
  absl::MutexLock lock(&mu_);
  if (digest.is_empty_blob() || blobs_.count({std::string(ns), digest})) {
    return std::unique_ptr<BlobWriter>(
        new Writer(this, std::string(ns), digest, key, "", true));
  }
  std::string data;
  auto up = key.empty() ? uploads_.end() : uploads_.find(key);
  if (up != uploads_.end()) {
    if (up->second.first != digest) {
      return absl::InvalidArgumentError("resource_name: upload digest changed");
    }
    data = std::move(up->second.second);
    uploads_.erase(up);
  }
  return std::unique_ptr<BlobWriter>(
      new Writer(this, std::string(ns), digest, key, std::move(data), false));
}

absl::StatusOr<int64_t> MemoryBlobStore::QueryWrite(
    absl::string_view ns, const Digest& digest, absl::string_view upload_key) {
  absl::MutexLock lock(&mu_);
  if (digest.is_empty_blob()) return 0;
  if (blobs_.count({std::string(ns), digest})) return digest.size();
  auto up = uploads_.find(absl::StrCat(ns, std::string(1, '\0'), upload_key));
  if (up == uploads_.end() || up->second.first != digest) {
    return absl::NotFoundError("no such upload");
  }
  return static_cast<int64_t>(up->second.second.size());
}

absl::StatusOr<std::string> MemoryBlobStore::GetAction(absl::string_view ns,
                                                       const Digest& action) {
  absl::MutexLock lock(&mu_);
  auto it = actions_.find({std::string(ns), action});
  if (it == actions_.end()) return absl::NotFoundError("no action result");
  return it->second;
}

absl::Status MemoryBlobStore::PutAction(absl::string_view ns,
                                        const Digest& action,
                                        absl::string_view serialized_result) {
  absl::MutexLock lock(&mu_);
  actions_[{std::string(ns), action}] = std::string(serialized_result);
  return absl::OkStatus();
}

absl::Status MemoryBlobStore::DeleteAction(absl::string_view ns,
                                           const Digest& action) {
  absl::MutexLock lock(&mu_);
  actions_.erase({std::string(ns), action});
  return absl::OkStatus();
}

void MemoryBlobStore::Evict(const Digest& digest) {
  absl::MutexLock lock(&mu_);
  for (auto it = blobs_.begin(); it != blobs_.end();) {
    it = it->first.second == digest ? blobs_.erase(it) : std::next(it);
  }
}

}  // namespace stagefarm
