#include "tests/cas_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace stagefarm {

absl::StatusOr<CasProcess> CasProcess::Start(
    const std::string& binary, const std::string& data_dir,
    const std::vector<std::string>& extra_args) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> args = {binary, "--listen", "127.0.0.1:0", "--data",
                                   data_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  CasProcess process;
  process.pid_ = pid;
  FILE* out = fdopen(fds[0], "r");
  char line[512];
  std::string first;
  if (out != nullptr && std::fgets(line, sizeof(line), out) != nullptr)
    first = line;
  // Keep reading the pipe in the background so the child never blocks on it.
  if (out != nullptr) {
    if (fork() == 0) {
      while (std::fgets(line, sizeof(line), out) != nullptr) {
      }
      _exit(0);
    }
    std::fclose(out);
  }
  constexpr absl::string_view kPrefix = "stagefarm-cas listening on ";
  absl::string_view view(first);
  if (!absl::ConsumePrefix(&view, kPrefix)) {
    return absl::UnavailableError(
        absl::StrCat("stagefarm-cas did not start: \"", first, "\""));
  }
  process.address_ = std::string(absl::StripAsciiWhitespace(view));
  return process;
}

CasProcess::CasProcess(CasProcess&& other) noexcept
    : pid_(other.pid_), address_(std::move(other.address_)) {
  other.pid_ = -1;
}

CasProcess& CasProcess::operator=(CasProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) Kill9();
    pid_ = other.pid_;
    address_ = std::move(other.address_);
    other.pid_ = -1;
  }
  return *this;
}

CasProcess::~CasProcess() {
  if (pid_ > 0) Kill9();
}

absl::StatusOr<int64_t> CasProcess::PeakRssBytes() const {
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (absl::ConsumePrefix(&v, "VmHWM:")) {
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, " kB");
      int64_t kb = 0;
      if (absl::SimpleAtoi(v, &kb)) return kb * 1024;
    }
  }
  return absl::NotFoundError("no VmHWM for the CAS process");
}

void CasProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int CasProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string CasBinaryPath() {
  if (const char* p = std::getenv("STAGEFARM_CAS_BINARY")) return p;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/",
                      workspace ? workspace : "stagefarm",
                      "/cas/stagefarm-cas");
}

std::string MakeTempDir(const std::string& prefix) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/", prefix, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

}  // namespace stagefarm
