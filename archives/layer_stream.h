// A layer's uncompressed tar stream for libarchive (archives/ internal):
// detects gzip (ISA-L) or zstd from the first bytes, decompresses, and
// hashes what it hands out (the diff_id). Not part of the package's API.
#ifndef STAGEFARM_ARCHIVES_LAYER_STREAM_H_
#define STAGEFARM_ARCHIVES_LAYER_STREAM_H_

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "archives/layer_tar.h"
#include "archives/tar_internal.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::archives::internal {

// The uncompressed tar stream of a layer: detects the compression from the
// first bytes, decompresses, and hashes what it hands out (the diff_id).
class LayerStream {
 public:
  explicit LayerStream(const ByteSource& source)
      : source_(source), out_(kIoBufferSize) {}
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;
  ~LayerStream() {
    if (zstd_ != nullptr) ZSTD_freeDCtx(zstd_);
  }

  // The next uncompressed bytes, valid until the next call; empty at the end.
  absl::StatusOr<absl::string_view> Next() {
    if (kind_ == Kind::kUnknown) RETURN_IF_ERROR(Detect());
    absl::StatusOr<absl::string_view> chunk;
    switch (kind_) {
      case Kind::kPlain:
        chunk = NextPlain();
        break;
      case Kind::kGzip:
        chunk = NextGzip();
        break;
      case Kind::kZstd:
        chunk = NextZstd();
        break;
      case Kind::kUnknown:
        return absl::InternalError("layer compression not detected");
    }
    if (chunk.ok()) tar_hash_.Update(*chunk);
    return chunk;
  }

  // Reads to the end, so the diff_id covers bytes after the tar's end
  // marker and the compressed stream's checksum gets verified.
  absl::Status Drain() {
    while (true) {
      ASSIGN_OR_RETURN(absl::string_view chunk, Next());
      if (chunk.empty()) return absl::OkStatus();
    }
  }

  std::string DiffId() { return absl::StrCat("sha256:", tar_hash_.FinalHex()); }

  void set_error(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }
  const absl::Status& error() const { return error_; }

 private:
  enum class Kind { kUnknown, kPlain, kGzip, kZstd };

  size_t available() const { return in_.size() - in_pos_; }
  const uint8_t* in_data() const {
    return reinterpret_cast<const uint8_t*>(in_.data()) + in_pos_;
  }

  // Appends the source's next bytes to the unconsumed input.
  absl::Status Fill() {
    if (eof_) return absl::OkStatus();
    chunk_.clear();
    ASSIGN_OR_RETURN(size_t n, source_(&chunk_));
    if (n > chunk_.size()) {
      return absl::InternalError(
          "layer source reported more bytes than it gave");
    }
    if (n == 0) {
      eof_ = true;
      return absl::OkStatus();
    }
    chunk_.resize(n);
    if (available() == 0) {
      in_.swap(chunk_);
    } else {
      in_.erase(0, in_pos_);
      in_.append(chunk_);
    }
    in_pos_ = 0;
    return absl::OkStatus();
  }

  absl::Status Detect() {
    while (available() < 4 && !eof_) RETURN_IF_ERROR(Fill());
    const uint8_t* p = in_data();
    if (available() >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
      kind_ = Kind::kGzip;
      gzip_ = std::make_unique<inflate_state>();
      isal_inflate_init(gzip_.get());
      gzip_->crc_flag = ISAL_GZIP;
    } else if (available() >= 4 && p[0] == 0x28 && p[1] == 0xb5 &&
               p[2] == 0x2f && p[3] == 0xfd) {
      kind_ = Kind::kZstd;
      zstd_ = ZSTD_createDCtx();
      if (zstd_ == nullptr) {
        return absl::ResourceExhaustedError("cannot allocate zstd context");
      }
    } else {
      kind_ = Kind::kPlain;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> NextPlain() {
    if (available() == 0) RETURN_IF_ERROR(Fill());
    absl::string_view chunk(in_.data() + in_pos_, available());
    in_pos_ = in_.size();
    return chunk;
  }

  absl::StatusOr<absl::string_view> NextGzip() {
    while (true) {
      if (gzip_member_done_) {
        if (available() == 0) {
          if (eof_) return absl::string_view();
          RETURN_IF_ERROR(Fill());
          continue;
        }
        // Concatenated members form one gzip stream (pigz, appends).
        isal_inflate_reset(gzip_.get());
        gzip_->crc_flag = ISAL_GZIP;
        gzip_member_done_ = false;
      }
      uint32_t offered = static_cast<uint32_t>(
          std::min<size_t>(available(), std::numeric_limits<uint32_t>::max()));
      gzip_->next_in = const_cast<uint8_t*>(in_data());
      gzip_->avail_in = offered;
      gzip_->next_out = out_.data();
      gzip_->avail_out = static_cast<uint32_t>(out_.size());
      int rc = isal_inflate(gzip_.get());
      size_t consumed = offered - gzip_->avail_in;
      in_pos_ += consumed;
      if (rc < 0) {
        return absl::DataLossError(
            absl::StrCat("corrupt gzip layer: ", GzipErrorText(rc)));
      }
      size_t produced = out_.size() - gzip_->avail_out;
      if (gzip_->block_state == ISAL_BLOCK_FINISH) gzip_member_done_ = true;
      if (produced > 0) {
        return absl::string_view(reinterpret_cast<const char*>(out_.data()),
                                 produced);
      }
      if (gzip_member_done_) continue;
      if (available() > 0) {
        if (consumed == 0) {
          return absl::DataLossError("corrupt gzip layer: decoder stalled");
        }
        continue;
      }
      if (eof_) return absl::DataLossError("truncated gzip layer");
      RETURN_IF_ERROR(Fill());
    }
  }

  absl::StatusOr<absl::string_view> NextZstd() {
    while (true) {
      ZSTD_inBuffer in{in_data(), available(), 0};
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      size_t rc = ZSTD_decompressStream(zstd_, &out, &in);
      in_pos_ += in.pos;
      if (ZSTD_isError(rc)) {
        return absl::DataLossError(
            absl::StrCat("corrupt zstd layer: ", ZSTD_getErrorName(rc)));
      }
      // 0 means a frame just ended and everything is flushed.
      // (A call without progress starts looking for the next frame and
      // returns non-zero even at a clean end, so only progress counts.)
      if (in.pos > 0 || out.pos > 0) zstd_frame_done_ = rc == 0;
      if (out.pos > 0) {
        return absl::string_view(reinterpret_cast<const char*>(out_.data()),
                                 out.pos);
      }
      if (available() > 0) {
        if (in.pos == 0) {
          return absl::DataLossError("corrupt zstd layer: decoder stalled");
        }
        continue;
      }
      if (eof_) {
        if (!zstd_frame_done_)
          return absl::DataLossError("truncated zstd layer");
        return absl::string_view();
      }
      RETURN_IF_ERROR(Fill());
    }
  }

  static std::string GzipErrorText(int rc) {
    switch (rc) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER:
        return "invalid gzip header";
      case ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch";
      default:
        return absl::StrCat("error ", rc);
    }
  }

  const ByteSource& source_;
  Kind kind_ = Kind::kUnknown;
  std::string in_;  // compressed input; in_pos_ is the first unconsumed byte
  size_t in_pos_ = 0;
  std::string chunk_;
  bool eof_ = false;
  std::vector<uint8_t> out_;
  std::unique_ptr<inflate_state> gzip_;
  bool gzip_member_done_ = false;
  ZSTD_DCtx* zstd_ = nullptr;
  bool zstd_frame_done_ = false;
  Sha256 tar_hash_;
  absl::Status error_;
};

inline la_ssize_t StreamReadCallback(archive* a, void* client,
                                     const void** buffer) {
  auto* stream = static_cast<LayerStream*>(client);
  absl::StatusOr<absl::string_view> chunk = stream->Next();
  if (!chunk.ok()) {
    archive_set_error(a, EIO, "%s",
                      std::string(chunk.status().message()).c_str());
    stream->set_error(chunk.status());
    return -1;
  }
  *buffer = chunk->data();
  return static_cast<la_ssize_t>(chunk->size());
}

// A layer's tar entries as libarchive reads them from a LayerStream (a
// zero-byte blob is an empty layer too); errors say how far it got, and a
// fault of the stream (a bad blob, a read error) is returned as it is.
class LayerTarReader {
 public:
  explicit LayerTarReader(LayerStream* stream)
      : stream_(stream), in_(archive_read_new()) {}

  absl::Status Open() {
    if (in_ == nullptr) {
      return absl::ResourceExhaustedError("allocating a libarchive handle");
    }
    archive_read_support_format_tar(in_.get());
    archive_read_support_format_empty(in_.get());
    if (archive_read_open(in_.get(), stream_, nullptr, StreamReadCallback,
                          nullptr) != ARCHIVE_OK) {
      return Error("reading layer: ");
    }
    return absl::OkStatus();
  }

  // The next entry's header (valid until the next call); null at the end.
  absl::StatusOr<archive_entry*> Next() {
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(in_.get(), &e);
    if (rc == ARCHIVE_EOF) return nullptr;
    if (rc < ARCHIVE_WARN) {
      return Error(
          absl::StrCat("reading layer after ", entries_, " entries: "));
    }
    ++entries_;
    return e;
  }

  archive* get() const { return in_.get(); }
  int64_t entries() const { return entries_; }

 private:
  absl::Status Error(absl::string_view what) {
    if (!stream_->error().ok()) return stream_->error();
    return absl::InvalidArgumentError(
        absl::StrCat(what, ArchiveErrorText(in_.get())));
  }

  LayerStream* stream_;
  ArchiveReader in_;
  int64_t entries_ = 0;
};

}  // namespace stagefarm::archives::internal

#endif  // STAGEFARM_ARCHIVES_LAYER_STREAM_H_
