// One step's output on its way to people: what is streamed live is bounded
// (bytes per step and a rate), and when anything was held back the whole
// output is kept as a blob so it can still be read in full afterwards
// (`stagefarm logs BUILD --step N --full`).
//
// Output is bytes: nothing here looks at encodings. Chunks are passed on as
// the process wrote them (NULs, `\r` progress bars, ANSI colour, invalid
// UTF-8 included); renderers escape what their medium cannot carry.
#ifndef STAGEFARM_ENGINE_STEP_LOG_H_
#define STAGEFARM_ENGINE_STEP_LOG_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "blobstore/blob_store.h"
#include "common/digest.h"
#include "common/sha256.h"

namespace stagefarm::engine {

struct LogLimits {
  // Bytes of one step's output streamed live; the rest is in the full log.
  int64_t live_bytes = int64_t{2} << 20;
  // Live bytes per second per step (a token bucket holding one second's
  // worth); output over the rate is left out of the live stream. 0: none.
  int64_t rate_bytes_per_second = int64_t{1} << 20;
  // Bytes of the full output kept (a step that prints forever stops being
  // recorded here; it is not stopped).
  int64_t keep_bytes = int64_t{1} << 30;
};

class StepLog {
 public:
  using Clock = std::chrono::steady_clock;
  // `live` receives what is streamed: output chunks and, once, the note
  // that says what was left out. `scratch_dir` receives the full output
  // file (removed by the destructor).
  StepLog(LogLimits limits, std::string scratch_dir,
          std::function<void(std::string chunk)> live,
          std::function<Clock::time_point()> now = &Clock::now);
  ~StepLog();
  StepLog(const StepLog&) = delete;
  StepLog& operator=(const StepLog&) = delete;

  // The process's output, in order. Never fails: a full log that cannot be
  // written (disk full) is given up and said so in the note.
  void Write(absl::string_view chunk);

  // After the step. When output was held back, streams the end of the
  // output the live log missed (its last kTailBytes: where errors are), then
  // stores the full output in `blobs` and returns its digest (nullopt when
  // everything was streamed, or the full log could not be kept; `note()` says
  // which).
  absl::StatusOr<std::optional<Digest>> Finish(BlobStore* blobs,
                                               const std::string& ns);

  int64_t total_bytes() const { return total_; }
  int64_t live_bytes() const { return streamed_; }
  bool clipped() const { return total_ > streamed_; }
  // The line saying what was left out of the live stream ("" when
  // nothing): for failure reports and the end of the live stream.
  std::string Note(const std::string& full_log_hint) const;

 private:
  void Keep(absl::string_view chunk);
  bool TakeTokens(int64_t n);

  LogLimits limits_;
  std::string dir_, path_;
  std::function<void(std::string)> live_;
  std::function<Clock::time_point()> now_;
  int fd_ = -1;
  bool keep_failed_ = false;
  std::string keep_error_;
  static constexpr size_t kTailBytes = 4096;
  std::string tail_;          // the output's last kTailBytes
  int64_t streamed_end_ = 0;  // total_ when a chunk was last streamed
  int64_t kept_ = 0, total_ = 0, streamed_ = 0, over_rate_ = 0;
  bool said_clipped_ = false;
  bool throttled_ = false;
  double tokens_ = 0;
  Clock::time_point last_refill_;
  Sha256 hash_;
};

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_STEP_LOG_H_
