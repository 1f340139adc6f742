// Runs real containers with runc in a busybox root filesystem. Needs root,
// runc and /bin/busybox (Debian's busybox-static); skipped otherwise.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "executor/memory_kill.h"
#include "executor/runc_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stagefarm::executor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a host command and returns its stdout.
std::string HostOutput(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

// Interface names in /proc/net/dev text.
std::set<std::string> Interfaces(const std::string& net_dev) {
  std::set<std::string> names;
  for (absl::string_view line : absl::StrSplit(net_dev, '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    names.insert(
        std::string(absl::StripAsciiWhitespace(line.substr(0, colon))));
  }
  return names;
}

class RuncExecutorIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string base = absl::StrCat(tmp != nullptr ? tmp : "/tmp",
                                    "/runc_executor_test.XXXXXX");
    ASSERT_NE(mkdtemp(base.data()), nullptr);
    dir_ = new std::string(base);
    const std::string rootfs = *dir_ + "/rootfs";
    for (const char* sub :
         {"bin", "etc", "tmp", "proc", "sys", "dev", "work", "data"}) {
      fs::create_directories(rootfs + "/" + sub);
    }
    fs::permissions(rootfs + "/tmp", fs::perms::all | fs::perms::sticky_bit);
    if (access("/bin/busybox", X_OK) != 0) return;
    fs::copy_file("/bin/busybox", rootfs + "/bin/busybox");
    for (absl::string_view applet : absl::StrSplit(
             HostOutput("/bin/busybox --list"), '\n', absl::SkipWhitespace())) {
      // The list includes "busybox" itself.
      if (applet == "busybox") continue;
      fs::create_symlink("busybox", rootfs + "/bin/" + std::string(applet));
    }
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs busybox";
    RuncOptions options;
    options.state_dir = *dir_ + "/state";
    options.bundles_dir = *dir_ + "/bundles";
    options.cgroup_parent = "/stagefarm-test";
    absl::StatusOr<std::unique_ptr<RuncExecutor>> executor =
        RuncExecutor::Create(options);
    if (!executor.ok() &&
        executor.status().code() == absl::StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << executor.status();
    }
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = std::move(*executor);
  }

  void TearDown() override {
    if (executor_ == nullptr) return;
    // Every run removes its bundle and its container.
    EXPECT_TRUE(fs::is_empty(executor_->options().bundles_dir));
    EXPECT_EQ(ListContainers(), "");
  }

  std::string ListContainers() {
    return HostOutput(absl::StrCat(executor_->runtime_path(), " --root ",
                                   executor_->options().state_dir,
                                   " list -q 2>&1"));
  }

  static std::string Rootfs() { return *dir_ + "/rootfs"; }

  static ExecSpec Spec(const std::string& script) {
    ExecSpec spec;
    spec.rootfs = Rootfs();
    spec.args = {"sh", "-c", script};
    spec.env = {"PATH=/bin"};
    return spec;
  }

  // Runs and expects success; returns the output tail.
  std::string RunOk(const ExecSpec& spec, int expected_exit = 0) {
    absl::StatusOr<ExecResult> result = executor_->Run(spec);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return "";
    EXPECT_EQ(result->exit_code, expected_exit) << result->output_tail;
    return result->output_tail;
  }

  static std::string* dir_;
  std::unique_ptr<RuncExecutor> executor_;
};

std::string* RuncExecutorIntegrationTest::dir_ = nullptr;

TEST_F(RuncExecutorIntegrationTest, OutputArrivesThroughCallbackAndTail) {
  ExecSpec spec = Spec("echo hello; echo oops >&2");
  std::string streamed;
  spec.on_output = [&streamed](absl::string_view chunk) {
    streamed.append(chunk.data(), chunk.size());
  };
  std::string tail = RunOk(spec);
  EXPECT_THAT(streamed, HasSubstr("hello\n"));
  EXPECT_THAT(streamed, HasSubstr("oops\n"));
  EXPECT_EQ(tail, streamed);
}

TEST_F(RuncExecutorIntegrationTest, TailKeepsLast4KiB) {
  ExecSpec spec =
      Spec("head -c 100000 /dev/zero | tr '\\0' a; echo; echo THE-END");
  size_t streamed = 0;
  spec.on_output = [&streamed](absl::string_view chunk) {
    streamed += chunk.size();
  };
  std::string tail = RunOk(spec);
  EXPECT_EQ(streamed, 100000u + 1 + 8);
  EXPECT_EQ(tail.size(), 4096u);
  EXPECT_THAT(tail, HasSubstr("aaaa\nTHE-END\n"));
}

TEST_F(RuncExecutorIntegrationTest, ExitCode) { RunOk(Spec("exit 3"), 3); }

TEST_F(RuncExecutorIntegrationTest, UserAndGroups) {
  ExecSpec spec = Spec(
      "id -u; id -g; id -G; cat /etc/hosts >/dev/null && "
      "echo hosts-readable");
  spec.uid = 1000;
  spec.gid = 1000;
  spec.additional_gids = {2000};
  std::string out = RunOk(spec);
  EXPECT_THAT(out, HasSubstr("1000\n1000\n1000 2000\nhosts-readable\n"));
}

TEST_F(RuncExecutorIntegrationTest, EnvAndCwd) {
  ExecSpec spec = Spec("echo \"FOO=$FOO\"; pwd");
  spec.env = {"PATH=/bin", "FOO=bar baz"};
  spec.cwd = "/work";
  EXPECT_EQ(RunOk(spec), "FOO=bar baz\n/work\n");
}

TEST_F(RuncExecutorIntegrationTest, NoNetworkOnlyLoopback) {
  ExecSpec spec = Spec("cat /proc/net/dev");
  spec.network = Network::kNone;
  std::string out = RunOk(spec);
  EXPECT_EQ(Interfaces(out), std::set<std::string>{"lo"}) << out;
}

TEST_F(RuncExecutorIntegrationTest, HostNetworkSharesHostInterfaces) {
  ExecSpec spec = Spec(
      "cat /proc/net/dev; echo ---; cat /etc/resolv.conf; "
      "echo ---; cat /etc/hosts; hostname");
  spec.hostname = "stepbox";
  spec.network = Network::kHost;
  std::string out = RunOk(spec);
  std::vector<std::string> parts = absl::StrSplit(out, "---\n");
  ASSERT_EQ(parts.size(), 3u) << out;
  EXPECT_EQ(Interfaces(parts[0]), Interfaces(ReadFile("/proc/net/dev")));
  EXPECT_EQ(parts[1], ReadFile("/etc/resolv.conf"));
  EXPECT_THAT(parts[2], HasSubstr("127.0.0.1\tlocalhost stepbox\n"));
  EXPECT_THAT(parts[2], HasSubstr("\nstepbox\n"));
}

// A TCP listener on the host at `address`, port chosen by the kernel.
struct Listener {
  explicit Listener(const char* address) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, address, &a.sin_addr);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd, 8);
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { close(fd); }
  bool Accepted() {
    int c = accept(fd, nullptr, nullptr);
    if (c < 0) return false;
    close(c);
    return true;
  }
  int fd = -1;
  int port = 0;
};

TEST_F(RuncExecutorIntegrationTest, SandboxNetworkIsPrivate) {
  Listener loopback("127.0.0.1");
  Listener any("0.0.0.0");
  ASSERT_GT(loopback.port, 0);
  ASSERT_GT(any.port, 0);
  // The default network: the step's own namespace behind the bridge.
  ExecSpec spec = Spec(absl::StrCat(
      "cat /proc/net/dev; echo ---; cat /etc/resolv.conf; echo ---; "
      "GW=$(ip route | awk '/^default/ {print $3}'); echo gw=$GW; "
      "ip -4 addr show dev eth0 | awk '/inet / {print $2}'; "
      "nc -w 2 127.0.0.1 ",
      loopback.port, " </dev/null && echo REACHED-LOOPBACK; nc -w 2 $GW ",
      any.port, " </dev/null && echo REACHED-HOST; true"));
  std::string out = RunOk(spec);
  std::vector<std::string> parts = absl::StrSplit(out, "---\n");
  ASSERT_EQ(parts.size(), 3u) << out;
  EXPECT_EQ(Interfaces(parts[0]), (std::set<std::string>{"lo", "eth0"}));
  EXPECT_EQ(parts[1], SandboxResolvConf(ReadFile("/etc/resolv.conf")));
  EXPECT_THAT(parts[2], HasSubstr("gw=10.213."));
  EXPECT_THAT(parts[2], HasSubstr("/24"));
  EXPECT_THAT(parts[2], Not(HasSubstr("REACHED"))) << parts[2];
  EXPECT_FALSE(loopback.Accepted());
  EXPECT_FALSE(any.Accepted());
}

TEST_F(RuncExecutorIntegrationTest, SandboxesAtOnceGetTheirOwnAddresses) {
  std::vector<std::thread> threads;
  std::vector<std::string> outs(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([this, i, &outs] {
      absl::StatusOr<ExecResult> r = executor_->Run(
          Spec("ip -4 addr show dev eth0 | awk '/inet / {print $2}'; "
               "sleep 0.3"));
      if (r.ok()) outs[i] = r->output_tail;
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> addresses(outs.begin(), outs.end());
  EXPECT_EQ(addresses.size(), 4u);
  for (const std::string& a : outs) EXPECT_THAT(a, HasSubstr("10.213."));
}

TEST_F(RuncExecutorIntegrationTest, ForceNoNetwork) {
  RuncOptions options = executor_->options();
  options.force_no_network = true;
  absl::StatusOr<std::unique_ptr<RuncExecutor>> executor =
      RuncExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  absl::StatusOr<ExecResult> result =
      (*executor)->Run(Spec("cat /proc/net/dev"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Interfaces(result->output_tail), std::set<std::string>{"lo"});
}

TEST_F(RuncExecutorIntegrationTest, BindMounts) {
  const std::string ro_dir = *dir_ + "/ro-src";
  const std::string rw_dir = *dir_ + "/rw-src";
  fs::create_directories(ro_dir);
  fs::create_directories(rw_dir);
  std::ofstream(ro_dir + "/f") << "from-host\n";
  ExecSpec spec = Spec(
      "cat /data/ro/f; echo x > /data/ro/g && echo ro-writable; "
      "echo written > /data/rw/h");
  ExecMount ro;
  ro.source = ro_dir;
  ro.destination = "/data/ro";
  ro.read_only = true;
  ExecMount rw;
  rw.source = rw_dir;
  rw.destination = "/data/rw";
  spec.mounts = {ro, rw};
  std::string out = RunOk(spec);
  EXPECT_THAT(out, HasSubstr("from-host\n"));
  EXPECT_THAT(out, HasSubstr("Read-only file system"));
  EXPECT_THAT(out, Not(HasSubstr("ro-writable")));
  EXPECT_FALSE(fs::exists(ro_dir + "/g"));
  EXPECT_EQ(ReadFile(rw_dir + "/h"), "written\n");
}

TEST_F(RuncExecutorIntegrationTest, TmpfsMount) {
  ExecSpec spec = Spec(
      "grep ' /scratch ' /proc/mounts; echo data > /scratch/a && cat "
      "/scratch/a");
  ExecMount tmp;
  tmp.type = "tmpfs";
  tmp.destination = "/scratch";
  tmp.options = "size=1m";
  spec.mounts = {tmp};
  std::string out = RunOk(spec);
  EXPECT_THAT(out, HasSubstr("tmpfs /scratch tmpfs"));
  EXPECT_THAT(out, HasSubstr("size=1024k"));
  EXPECT_THAT(out, HasSubstr("data\n"));
  EXPECT_FALSE(fs::exists(Rootfs() + "/scratch/a"));
}

TEST_F(RuncExecutorIntegrationTest, DockerCapabilitiesNoNewPrivsSeccomp) {
  std::string out = RunOk(Spec("cat /proc/self/status"));
  EXPECT_THAT(out, HasSubstr("CapInh:\t0000000000000000\n"));
  EXPECT_THAT(out, HasSubstr("CapPrm:\t00000000a80425fb\n"));
  EXPECT_THAT(out, HasSubstr("CapEff:\t00000000a80425fb\n"));
  EXPECT_THAT(out, HasSubstr("CapBnd:\t00000000a80425fb\n"));
  EXPECT_THAT(out, HasSubstr("CapAmb:\t0000000000000000\n"));
  EXPECT_THAT(out, HasSubstr("NoNewPrivs:\t1\n"));
  EXPECT_THAT(out, HasSubstr("Seccomp:\t2\n"));
}

TEST_F(RuncExecutorIntegrationTest, SeccompRefusesUnshare) {
  // A user namespace needs no capability, so only seccomp refuses this.
  std::string out = RunOk(Spec("unshare -U true || echo refused"));
  EXPECT_THAT(out, HasSubstr("Operation not permitted"));
  EXPECT_THAT(out, HasSubstr("refused\n"));
}

TEST_F(RuncExecutorIntegrationTest, MaskedAndReadonlyPaths) {
  std::string out = RunOk(
      Spec("echo kcore=$(cat /proc/kcore | wc -c); ls /sys/firmware | wc -l; "
           "echo 1 > /proc/sys/vm/drop_caches || echo sys-readonly"));
  EXPECT_THAT(out, HasSubstr("kcore=0\n"));
  EXPECT_THAT(out, HasSubstr("\n0\n"));
  EXPECT_THAT(out, HasSubstr("sys-readonly\n"));
}

TEST_F(RuncExecutorIntegrationTest, PidsLimit) {
  ExecSpec spec = Spec(
      "cat /sys/fs/cgroup/pids/pids.max; "
      "for i in $(seq 50); do sleep 5 & done; echo spawned");
  spec.pids_limit = 20;
  // busybox sh gives up on the script (exit 2) when fork fails.
  std::string out = RunOk(spec, 2);
  EXPECT_THAT(out, HasSubstr("20\n"));
  EXPECT_THAT(out, Not(HasSubstr("spawned")));
  EXPECT_THAT(out, HasSubstr("can't fork: Resource temporarily unavailable"));
}

TEST_F(RuncExecutorIntegrationTest, MemoryLimit) {
  ExecSpec spec = Spec("cat /sys/fs/cgroup/memory/memory.limit_in_bytes");
  spec.memory_bytes = 32 << 20;
  EXPECT_EQ(RunOk(spec), "33554432\n");

  // 200 MB in a shell variable: the OOM killer ends the container.
  ExecSpec hog = Spec(
      "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}");
  hog.memory_bytes = 32 << 20;
  absl::StatusOr<ExecResult> result = executor_->Run(hog);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 137) << result->output_tail;
  EXPECT_THAT(result->output_tail, Not(HasSubstr("survived")));
}

TEST_F(RuncExecutorIntegrationTest, AKillForMemoryIsReported) {
  // A pipeline over the limit: the kernel kills tail.
  ExecSpec hog = Spec("head -c 300m /dev/zero | tail");
  hog.memory_bytes = 64 << 20;
  absl::StatusOr<ExecResult> result = executor_->Run(hog);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 137) << result->output_tail;
  EXPECT_TRUE(result->killed_for_memory);
  EXPECT_EQ(DescribeExit(*result),
            "exit code: 137: killed by the kernel: out of memory (the step's "
            "memory limit is 64 MiB)");

  // Within the limit, and killed otherwise: no word of memory.
  ExecSpec fits = Spec("head -c 1m /dev/zero | tail | wc -c; exit 3");
  fits.memory_bytes = 64 << 20;
  result = executor_->Run(fits);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_FALSE(result->killed_for_memory);
  // (A shell below the container's init: init ignores SIGKILL from inside.)
  ExecSpec killed = Spec("sh -c 'kill -9 $$'; exit $?");
  killed.memory_bytes = 64 << 20;
  result = executor_->Run(killed);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 137);
  EXPECT_FALSE(result->killed_for_memory);
  EXPECT_EQ(DescribeExit(*result), "exit code: 137");
}

TEST_F(RuncExecutorIntegrationTest, ShmSize) {
  RuncOptions options = executor_->options();
  options.shm_bytes = 16 << 20;
  absl::StatusOr<std::unique_ptr<RuncExecutor>> sized =
      RuncExecutor::Create(options);
  ASSERT_TRUE(sized.ok()) << sized.status();
  absl::StatusOr<ExecResult> result =
      (*sized)->Run(Spec("grep ' /dev/shm ' /proc/mounts"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->output_tail, HasSubstr("size=16384k"));
  EXPECT_THAT(RunOk(Spec("grep ' /dev/shm ' /proc/mounts")),
              HasSubstr("size=65536k"));
}

TEST_F(RuncExecutorIntegrationTest, CancelKillsContainer) {
  std::atomic<bool> cancel{false};
  ExecSpec spec = Spec("echo started; sleep 100");
  spec.cancel = &cancel;
  std::atomic<bool> started{false};
  spec.on_output = [&started](absl::string_view) { started = true; };
  std::thread canceller([&] {
    while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ExecResult> result;
  std::chrono::steady_clock::duration cancel_latency;
  {
    result = executor_->Run(spec);
    cancel_latency = std::chrono::steady_clock::now() - start;
  }
  canceller.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled)
      << result.status();
  // Started, ran ~200 ms, then cancelled well within a second.
  EXPECT_LT(cancel_latency, std::chrono::milliseconds(1500));
  EXPECT_EQ(ListContainers(), "");
}

// runc's Go runtime must not preempt goroutines with SIGURG, which the
// foreground runc forwards to the container (a shell trapping every signal
// sees its `wait` interrupted); and the setting stays runc's own.
TEST_F(RuncExecutorIntegrationTest, RuncRunsWithoutAsyncPreemption) {
  ExecSpec spec = Spec("echo started; sleep 1; env");
  std::string runc_env;
  spec.on_output = [&runc_env](absl::string_view chunk) {
    if (!runc_env.empty() || !absl::StrContains(chunk, "started")) return;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      std::string stat = ReadFile(entry.path().string() + "/stat");
      // pid (comm) state ppid ...
      size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      std::vector<std::string> fields =
          absl::StrSplit(stat.substr(close + 2), ' ');
      if (fields.size() < 2 || fields[1] != std::to_string(getpid())) continue;
      runc_env = "\n" + ReadFile(entry.path().string() + "/environ");
      std::replace(runc_env.begin(), runc_env.end(), '\0', '\n');
    }
  };
  std::string tail = RunOk(spec);
  EXPECT_THAT(runc_env, HasSubstr("\nGODEBUG=asyncpreemptoff=1\n"));
  EXPECT_THAT(tail, Not(HasSubstr("GODEBUG")));
}

TEST_F(RuncExecutorIntegrationTest, CancelBeforeStart) {
  std::atomic<bool> cancel{true};
  ExecSpec spec = Spec("echo never");
  spec.cancel = &cancel;
  EXPECT_EQ(executor_->Run(spec).status().code(), absl::StatusCode::kCancelled);
}

TEST_F(RuncExecutorIntegrationTest, CancelDuringStartup) {
  // Cancel immediately after Run starts: the container may not exist yet
  // when the first kill is attempted.
  for (int i = 0; i < 3; ++i) {
    std::atomic<bool> cancel{false};
    ExecSpec spec = Spec("sleep 100");
    spec.cancel = &cancel;
    std::thread canceller([&] { cancel = true; });
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<ExecResult> result = executor_->Run(spec);
    canceller.join();
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(3));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled)
        << result.status();
  }
}

TEST_F(RuncExecutorIntegrationTest, ParallelRuns) {
  absl::StatusOr<ExecResult> results[2];
  std::thread threads[2];
  for (int i = 0; i < 2; ++i) {
    threads[i] = std::thread([this, i, &results] {
      results[i] = executor_->Run(
          Spec(absl::StrCat("sleep 0.3; echo run", i, "; exit ", i + 5)));
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->exit_code, i + 5);
    EXPECT_EQ(results[i]->output_tail, absl::StrCat("run", i, "\n"));
  }
}

TEST_F(RuncExecutorIntegrationTest, SymlinkedRootfs) {
  const std::string link = *dir_ + "/rootfs-link";
  fs::create_symlink(Rootfs(), link);
  ExecSpec spec = Spec("echo ok");
  spec.rootfs = link;
  EXPECT_EQ(RunOk(spec), "ok\n");
}

TEST_F(RuncExecutorIntegrationTest, CommandNotFound) {
  ExecSpec spec;
  spec.rootfs = Rootfs();
  spec.args = {"no-such-command"};
  absl::StatusOr<ExecResult> result = executor_->Run(spec);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("executable file not found"));
}

TEST_F(RuncExecutorIntegrationTest, MissingRootfs) {
  ExecSpec spec = Spec("true");
  spec.rootfs = *dir_ + "/no-such-rootfs";
  EXPECT_EQ(executor_->Run(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RuncExecutorIntegrationTest, MissingRuntime) {
  RuncOptions options = executor_->options();
  options.runtime = "/nonexistent/runc";
  absl::StatusOr<std::unique_ptr<RuncExecutor>> executor =
      RuncExecutor::Create(options);
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(executor.status().message(),
            "runc not found: install the runc package");
}

}  // namespace
}  // namespace stagefarm::executor
