#include "engine/step_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "blobstore/blob_files.h"
#include "common/status_macros.h"

namespace stagefarm::engine {
namespace {

std::string Size(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1 << 20)) {
    return absl::StrFormat("%.1f KiB", static_cast<double>(bytes) / 1024);
  }
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

StepLog::StepLog(LogLimits limits, std::string scratch_dir,
                 std::function<void(std::string)> live,
                 std::function<Clock::time_point()> now)
    : limits_(limits),
      dir_(std::move(scratch_dir)),
      live_(std::move(live)),
      now_(std::move(now)) {
  tokens_ = static_cast<double>(limits_.rate_bytes_per_second);
  last_refill_ = now_();
}

StepLog::~StepLog() {
  if (fd_ >= 0) close(fd_);
  if (!path_.empty()) unlink(path_.c_str());
}

void StepLog::Keep(absl::string_view chunk) {
  if (keep_failed_) return;
  if (kept_ + static_cast<int64_t>(chunk.size()) > limits_.keep_bytes) {
    chunk = chunk.substr(0, static_cast<size_t>(limits_.keep_bytes - kept_));
    keep_failed_ = true;
    keep_error_ = absl::StrCat("only the first ", Size(limits_.keep_bytes),
                               " of the output are kept");
  }
  if (fd_ < 0 && !chunk.empty()) {
    path_ = absl::StrCat(dir_, "/output-", getpid(), "-",
                         reinterpret_cast<uintptr_t>(this), ".log");
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      keep_failed_ = true;
      keep_error_ =
          absl::StrCat("the full output cannot be kept: ", strerror(errno));
      path_.clear();
      return;
    }
  }
  const char* p = chunk.data();
  size_t left = chunk.size();
  while (left > 0) {
    ssize_t n = write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      keep_failed_ = true;
      keep_error_ =
          absl::StrCat("the full output cannot be kept: ", strerror(errno));
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  hash_.Update(chunk);
  kept_ += static_cast<int64_t>(chunk.size());
}

bool StepLog::TakeTokens(int64_t n) {
  if (limits_.rate_bytes_per_second <= 0) return true;
  Clock::time_point t = now_();
  double rate = static_cast<double>(limits_.rate_bytes_per_second);
  tokens_ = std::min(
      rate,
      tokens_ + std::chrono::duration<double>(t - last_refill_).count() * rate);
  last_refill_ = t;
  // Once over the rate, the live log resumes when a quarter of a second's
  // worth is back, so a flood shows as a few gaps rather than many.
  if (throttled_ && tokens_ < rate / 4) return false;
  throttled_ = tokens_ < static_cast<double>(n);
  if (throttled_) return false;
  tokens_ -= static_cast<double>(n);
  return true;
}

void StepLog::Write(absl::string_view chunk) {
  if (chunk.empty()) return;
  total_ += static_cast<int64_t>(chunk.size());
  Keep(chunk);
  if (chunk.size() >= kTailBytes) {
    tail_ = std::string(chunk.substr(chunk.size() - kTailBytes));
  } else {
    tail_.append(chunk.data(), chunk.size());
    if (tail_.size() > kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
  }
  int64_t room = limits_.live_bytes - streamed_;
  if (room <= 0) return;
  absl::string_view live = chunk.substr(
      0, static_cast<size_t>(std::min<int64_t>(room, chunk.size())));
  if (!TakeTokens(static_cast<int64_t>(live.size()))) {
    over_rate_ += static_cast<int64_t>(live.size());
    return;
  }
  std::string out;
  if (over_rate_ > 0) {
    out = absl::StrCat("\n[", Size(over_rate_),
                       " of output left out of the live log: over ",
                       Size(limits_.rate_bytes_per_second), "/s]\n");
    over_rate_ = 0;
  }
  out.append(live.data(), live.size());
  streamed_ += static_cast<int64_t>(live.size());
  if (live.size() == chunk.size()) streamed_end_ = total_;
  if (streamed_ >= limits_.live_bytes && !said_clipped_) {
    said_clipped_ = true;
    absl::StrAppend(&out, "\n[output clipped: the live log stops at ",
                    Size(limits_.live_bytes),
                    " per step; the full output is kept]\n");
  }
  live_(std::move(out));
}

std::string StepLog::Note(const std::string& full_log_hint) const {
  if (!clipped()) return "";
  std::string s = absl::StrCat("output clipped: ", Size(streamed_), " of ",
                               Size(total_), " shown live");
  if (!keep_error_.empty()) absl::StrAppend(&s, "; ", keep_error_);
  if (!full_log_hint.empty()) absl::StrAppend(&s, "; ", full_log_hint);
  return s;
}

absl::StatusOr<std::optional<Digest>> StepLog::Finish(BlobStore* blobs,
                                                      const std::string& ns) {
  if (!clipped()) return std::nullopt;
  int64_t missed = total_ - streamed_end_;
  if (missed > 0) {
    size_t n = static_cast<size_t>(std::min<int64_t>(missed, tail_.size()));
    live_(absl::StrCat("\n[output clipped; its last ", Size(n), ":]\n",
                       absl::string_view(tail_).substr(tail_.size() - n)));
    streamed_end_ = total_;
  }
  if (kept_ == 0 || path_.empty()) return std::nullopt;
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  Digest d = Digest::FromRaw(hash_.Final(), kept_);
  RETURN_IF_ERROR(UploadFile(blobs, ns, path_, d));
  return d;
}

}  // namespace stagefarm::engine
