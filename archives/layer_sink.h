// Compressed layer output (archives/ internal): gzip in independent 1 MiB
// members on every core (libdeflate) or zstd, written to a file while the
// tar (diff_id) and the blob (digest) are hashed. Not part of the package's
// API.
#ifndef STAGEFARM_ARCHIVES_LAYER_SINK_H_
#define STAGEFARM_ARCHIVES_LAYER_SINK_H_

#include <libdeflate.h>
#include <zstd.h>

#include <deque>
#include <future>
#include <thread>

#include "archives/layer_tar.h"
#include "archives/tar_internal.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::archives::internal {

// gzip as a series of independent members of 1 MiB input each (RFC 1952
// allows any number; gzip readers, Go's and Docker's included, read them as
// one stream), compressed with libdeflate on up to as many threads as there
// are cores and written in order. Members cost 18 bytes each and restart
// the 32 KiB window, so the ratio stays that of a single stream (measured in
// docs/benchmarks.md) while compression uses every core. libdeflate's
// output depends only on input and level, so layers are the same bytes on
// every machine.
class BlockGzip {
 public:
  using Emit = std::function<absl::Status(const std::vector<uint8_t>&)>;
  static constexpr size_t kBlock = 1 << 20;

  explicit BlockGzip(int level)
      : level_(level),
        max_pending_(2 * std::max(1u, std::thread::hardware_concurrency())) {
    block_.reserve(kBlock);
  }
  ~BlockGzip() {
    for (auto& f : pending_) f.wait();
  }

  absl::Status Write(const uint8_t* data, size_t size, const Emit& emit) {
    while (size > 0) {
      size_t n = std::min(size, kBlock - block_.size());
      block_.insert(block_.end(), data, data + n);
      data += n;
      size -= n;
      if (block_.size() == kBlock) RETURN_IF_ERROR(Submit(emit));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(const Emit& emit) {
    // An empty stream is still one (empty) member.
    if (!block_.empty() || (members_ == 0 && pending_.empty())) {
      RETURN_IF_ERROR(Submit(emit));
    }
    while (!pending_.empty()) RETURN_IF_ERROR(Drain(emit));
    return absl::OkStatus();
  }

 private:
  static absl::StatusOr<std::vector<uint8_t>> Compress(std::vector<uint8_t> in,
                                                       int level) {
    libdeflate_compressor* c = libdeflate_alloc_compressor(level);
    if (c == nullptr) {
      return absl::ResourceExhaustedError("cannot allocate a gzip compressor");
    }
    std::vector<uint8_t> out(libdeflate_gzip_compress_bound(c, in.size()));
    size_t n = libdeflate_gzip_compress(c, in.data(), in.size(), out.data(),
                                        out.size());
    libdeflate_free_compressor(c);
    if (n == 0) return absl::InternalError("gzip compression failed");
    out.resize(n);
    return out;
  }

  absl::Status Submit(const Emit& emit) {
    if (pending_.size() >= max_pending_) RETURN_IF_ERROR(Drain(emit));
    std::vector<uint8_t> in;
    in.swap(block_);
    block_.reserve(kBlock);
    pending_.push_back(std::async(std::launch::async, &BlockGzip::Compress,
                                  std::move(in), level_));
    return absl::OkStatus();
  }

  absl::Status Drain(const Emit& emit) {
    absl::StatusOr<std::vector<uint8_t>> member = pending_.front().get();
    pending_.pop_front();
    RETURN_IF_ERROR(member.status());
    ++members_;
    return emit(*member);
  }

  int level_;
  size_t max_pending_;
  std::vector<uint8_t> block_;
  std::deque<std::future<absl::StatusOr<std::vector<uint8_t>>>> pending_;
  int64_t members_ = 0;
};

// Receives the tar stream from libarchive: hashes it (diff_id), compresses
// it, hashes the compressed bytes (blob digest) and writes them to the file.
class BlobSink {
 public:
  BlobSink(int fd, Compression compression, int level, std::string path)
      : fd_(fd),
        compression_(compression),
        level_(level),
        path_(std::move(path)),
        out_(kIoBufferSize) {}
  BlobSink(const BlobSink&) = delete;
  BlobSink& operator=(const BlobSink&) = delete;
  ~BlobSink() {
    if (zstd_ != nullptr) ZSTD_freeCCtx(zstd_);
  }

  absl::Status Init() {
    switch (compression_) {
      case Compression::kGzip:
        gzip_ = std::make_unique<BlockGzip>(level_ > 0 ? level_ : 6);
        break;
      case Compression::kZstd: {
        zstd_ = ZSTD_createCCtx();
        if (zstd_ == nullptr) {
          return absl::ResourceExhaustedError("cannot allocate zstd context");
        }
        size_t rc = ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel,
                                           level_ > 0 ? level_ : 3);
        if (!ZSTD_isError(rc)) {
          rc = ZSTD_CCtx_setParameter(zstd_, ZSTD_c_checksumFlag, 1);
        }
        if (ZSTD_isError(rc)) {
          return absl::InternalError(
              absl::StrCat("configuring zstd: ", ZSTD_getErrorName(rc)));
        }
        break;
      }
      case Compression::kNone:
        break;
    }
    return absl::OkStatus();
  }

  // Takes the next bytes of the uncompressed tar stream.
  absl::Status Write(const uint8_t* data, size_t size) {
    tar_hash_.Update(
        absl::string_view(reinterpret_cast<const char*>(data), size));
    tar_size_ += static_cast<int64_t>(size);
    switch (compression_) {
      case Compression::kGzip:
        return gzip_->Write(data, size, [this](const std::vector<uint8_t>& m) {
          return Emit(m.data(), m.size());
        });
      case Compression::kZstd:
        return CompressZstd(data, size, ZSTD_e_continue);
      case Compression::kNone:
        while (size > 0) {
          RETURN_IF_ERROR(MakeRoom());
          size_t n = std::min(size, out_.size() - out_used_);
          std::memcpy(out_.data() + out_used_, data, n);
          out_used_ += n;
          data += n;
          size -= n;
        }
        return absl::OkStatus();
    }
    return absl::InternalError("unknown compression");
  }

  // Ends the compressed stream and writes out what is buffered.
  absl::Status Finish() {
    switch (compression_) {
      case Compression::kGzip:
        RETURN_IF_ERROR(gzip_->Finish([this](const std::vector<uint8_t>& m) {
          return Emit(m.data(), m.size());
        }));
        break;
      case Compression::kZstd:
        RETURN_IF_ERROR(CompressZstd(nullptr, 0, ZSTD_e_end));
        break;
      case Compression::kNone:
        break;
    }
    return FlushOut();
  }

  // The first error seen inside a libarchive callback, which libarchive
  // itself can only report as a string.
  void set_error(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }
  const absl::Status& error() const { return error_; }

  std::string DiffId() { return absl::StrCat("sha256:", tar_hash_.FinalHex()); }
  Digest BlobDigest() {
    return Digest::FromRaw(blob_hash_.Final(), blob_size_);
  }

 private:
  absl::Status MakeRoom() {
    if (out_used_ == out_.size()) return FlushOut();
    return absl::OkStatus();
  }

  absl::Status FlushOut() {
    if (out_used_ == 0) return absl::OkStatus();
    blob_hash_.Update(absl::string_view(
        reinterpret_cast<const char*>(out_.data()), out_used_));
    blob_size_ += static_cast<int64_t>(out_used_);
    RETURN_IF_ERROR(WriteAll(fd_, out_.data(), out_used_, path_));
    out_used_ = 0;
    return absl::OkStatus();
  }

  // Appends compressed bytes to the output buffer.
  absl::Status Emit(const uint8_t* data, size_t size) {
    while (size > 0) {
      RETURN_IF_ERROR(MakeRoom());
      size_t n = std::min(size, out_.size() - out_used_);
      std::memcpy(out_.data() + out_used_, data, n);
      out_used_ += n;
      data += n;
      size -= n;
    }
    return absl::OkStatus();
  }

  absl::Status CompressZstd(const uint8_t* data, size_t size,
                            ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size, 0};
    while (true) {
      RETURN_IF_ERROR(MakeRoom());
      ZSTD_outBuffer out{out_.data() + out_used_, out_.size() - out_used_, 0};
      size_t remaining = ZSTD_compressStream2(zstd_, &out, &in, mode);
      if (ZSTD_isError(remaining)) {
        return absl::InternalError(absl::StrCat("zstd compression failed for ",
                                                path_, ": ",
                                                ZSTD_getErrorName(remaining)));
      }
      out_used_ += out.pos;
      bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
      if (done) return absl::OkStatus();
    }
  }

  int fd_;
  Compression compression_;
  int level_ = 0;
  std::string path_;
  Sha256 tar_hash_;
  Sha256 blob_hash_;
  int64_t tar_size_ = 0;
  int64_t blob_size_ = 0;
  std::vector<uint8_t> out_;  // compressed bytes not yet written
  size_t out_used_ = 0;
  std::unique_ptr<BlockGzip> gzip_;
  ZSTD_CCtx* zstd_ = nullptr;
  absl::Status error_;
};

inline la_ssize_t SinkWriteCallback(archive* a, void* client,
                                    const void* buffer, size_t length) {
  auto* sink = static_cast<BlobSink*>(client);
  absl::Status status =
      sink->Write(static_cast<const uint8_t*>(buffer), length);
  if (!status.ok()) {
    archive_set_error(a, EIO, "%s", std::string(status.message()).c_str());
    sink->set_error(std::move(status));
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

}  // namespace stagefarm::archives::internal

#endif  // STAGEFARM_ARCHIVES_LAYER_SINK_H_
