#include "cli/cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fs_util.h"
#include "common/status_macros.h"

namespace stagefarm::cli {
namespace {

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string path(buf);
  return path.substr(0, path.rfind('/'));
}

// Starts `argv` in its own session with output to `log`; returns its pid.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::string& log) {
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("cannot create " + log);
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    setsid();
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fd);
  return pid;
}

// Waits for "... listening on ADDR" in `log`.
absl::StatusOr<std::string> WaitAddress(const std::string& log, pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      size_t at = line.find("listening on ");
      if (at != std::string::npos) return line.substr(at + 13);
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  return absl::UnavailableError(
      absl::StrCat("did not start (", log, "): ", text.str()));
}

// Alive and still one of ours (a pid file can outlive its processes, and
// pids are reused).
bool Alive(pid_t pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  char buf[4096];
  ssize_t n = readlink(absl::StrCat("/proc/", pid, "/exe").c_str(), buf,
                       sizeof(buf) - 1);
  if (n <= 0) return false;
  buf[n] = '\0';
  return std::strstr(buf, "/stagefarm-") != nullptr;
}

std::vector<pid_t> ReadPids(const std::string& file) {
  std::vector<pid_t> pids;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    int p = 0;
    if (absl::SimpleAtoi(line, &p) && p > 0) pids.push_back(p);
  }
  return pids;
}

void StopAll(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    if (Alive(p)) kill(p, SIGTERM);
  }
  for (int i = 0; i < 100; ++i) {
    bool any = false;
    for (pid_t p : pids) {
      waitpid(p, nullptr, WNOHANG);
      if (Alive(p)) any = true;
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (pid_t p : pids) {
    if (Alive(p)) kill(p, SIGKILL);
  }
}

}  // namespace

int ClusterUp(const std::string& state, int workers) {
  std::string pid_file = state + "/pids";
  for (pid_t p : ReadPids(pid_file)) {
    if (Alive(p)) {
      std::cerr << "stagefarm: a cluster is already running from " << state
                << " (stagefarm cluster down --state " << state
                << " stops it)\n";
      return 1;
    }
  }
  if (!MakeDirs(state + "/logs", 0700).ok()) {
    std::cerr << "stagefarm: cannot create " << state << "\n";
    return 1;
  }
  std::string bin = SelfDir();
  std::vector<pid_t> pids;
  auto fail = [&](const absl::Status& s) {
    StopAll(pids);
    std::cerr << "stagefarm: cluster up: " << s.message() << "\n";
    return 1;
  };
  auto start = [&](std::vector<std::string> argv,
                   const std::string& name) -> absl::StatusOr<pid_t> {
    ASSIGN_OR_RETURN(pid_t pid,
                     Spawn(argv, absl::StrCat(state, "/logs/", name, ".log")));
    pids.push_back(pid);
    std::ofstream(pid_file, std::ios::app) << pid << "\n";
    return pid;
  };
  std::remove(pid_file.c_str());
  auto cas_pid = start({bin + "/stagefarm-cas", "--listen", "127.0.0.1:0",
                        "--data", state + "/cas"},
                       "cas");
  if (!cas_pid.ok()) return fail(cas_pid.status());
  auto cas = WaitAddress(state + "/logs/cas.log", *cas_pid);
  if (!cas.ok()) return fail(cas.status());
  auto sched_pid = start(
      {bin + "/stagefarm-scheduler", "--listen", "127.0.0.1:0", "--state",
       state + "/scheduler", "--cas", *cas, "--http-listen", "127.0.0.1:0"},
      "scheduler");
  if (!sched_pid.ok()) return fail(sched_pid.status());
  auto sched = WaitAddress(state + "/logs/scheduler.log", *sched_pid);
  if (!sched.ok()) return fail(sched.status());
  for (int i = 1; i <= workers; ++i) {
    std::string name = absl::StrCat("worker-", i);
    auto w = start({bin + "/stagefarm-worker", "--scheduler", *sched, "--cas",
                    *cas, "--work", state + "/" + name, "--name", name},
                   name);
    if (!w.ok()) return fail(w.status());
  }
  std::string env = absl::StrCat("export STAGEFARM_CAS=", *cas,
                                 "\nexport STAGEFARM_SERVER=", *sched, "\n");
  if (!WriteStringToFile(state + "/env.sh", env, 0600).ok()) {
    return fail(absl::InternalError("cannot write " + state + "/env.sh"));
  }
  // The scheduler printed its web view's address after its own.
  std::string web;
  for (int i = 0; i < 50 && web.empty(); ++i) {
    auto log = ReadFileToString(state + "/logs/scheduler.log");
    size_t at = log.ok() ? log->find("web view at ") : std::string::npos;
    if (at != std::string::npos && log->find('\n', at) != std::string::npos) {
      web = log->substr(at + 12, log->find('\n', at) - at - 12);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::cerr << "stagefarm: cluster up: CAS " << *cas << ", scheduler " << *sched
            << ", " << workers << " workers (logs in " << state << "/logs)"
            << (web.empty() ? "" : ", web view at " + web)
            << "; for builds on it:\n";
  std::cout << env;
  return 0;
}

int ClusterDown(const std::string& state) {
  std::string pid_file = state + "/pids";
  std::vector<pid_t> pids = ReadPids(pid_file);
  if (pids.empty()) {
    std::cerr << "stagefarm: no cluster was started from " << state << "\n";
    return 1;
  }
  StopAll(pids);
  std::remove(pid_file.c_str());
  std::remove((state + "/env.sh").c_str());
  std::cerr << "stagefarm: cluster down: stopped " << pids.size()
            << " processes\n";
  return 0;
}

}  // namespace stagefarm::cli
