// CasProcess: runs the real stagefarm-cas binary as a child process for
// end-to-end tests (crash safety, memory bounds). Not thread-safe.
#ifndef STAGEFARM_TESTS_CAS_PROCESS_H_
#define STAGEFARM_TESTS_CAS_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace stagefarm {

class CasProcess {
 public:
  // Starts `binary --listen 127.0.0.1:0 --data data_dir extra_args...` and
  // waits for its "listening on" line.
  static absl::StatusOr<CasProcess> Start(
      const std::string& binary, const std::string& data_dir,
      const std::vector<std::string>& extra_args = {});
  CasProcess(CasProcess&& other) noexcept;
  CasProcess& operator=(CasProcess&& other) noexcept;
  ~CasProcess();

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // Peak resident set size so far, from /proc/PID/status (VmHWM), in bytes.
  absl::StatusOr<int64_t> PeakRssBytes() const;
  void Kill9();
  // SIGTERM and wait; returns the exit status.
  int Stop();

 private:
  CasProcess() = default;
  pid_t pid_ = -1;
  std::string address_;
};

// Path of the stagefarm-cas binary in the test's runfiles (Bazel sets
// TEST_SRCDIR); STAGEFARM_CAS_BINARY overrides it.
std::string CasBinaryPath();

// A fresh directory under TEST_TMPDIR (or /tmp).
std::string MakeTempDir(const std::string& prefix);

}  // namespace stagefarm

#endif  // STAGEFARM_TESTS_CAS_PROCESS_H_
