#include "executor/runc_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "executor/memory_kill.h"
#include "executor/seccomp_profile.h"
#include "executor/slirp_network.h"

namespace stagefarm::executor {
namespace {

using nlohmann::json;

constexpr size_t kTailBytes = 4096;
constexpr rlim_t kMaxNofile = 1048576;
constexpr char kDefaultPath[] =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Docker's default capabilities for a container.
const char* const kDefaultCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

// What `runc spec` (1.1.5) generates; these already include every path
// Docker adds.
const char* const kMaskedPaths[] = {
    "/proc/acpi",        "/proc/asound",        "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug",   "/sys/firmware",
    "/proc/scsi",
};
const char* const kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

std::string ErrnoText(int err) { return std::strerror(err); }

bool IsCancelled(const ExecSpec& spec) {
  return spec.cancel != nullptr && spec.cancel->load();
}

// An absolute path without "." or ".." components.
bool IsCleanAbsolute(absl::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "." || part == "..") return false;
  }
  return true;
}

json Mount(const std::string& destination, const std::string& type,
           const std::string& source, std::vector<std::string> options) {
  json mount;
  mount["destination"] = destination;
  mount["type"] = type;
  mount["source"] = source;
  if (!options.empty()) mount["options"] = std::move(options);
  return mount;
}

json DefaultMounts(int64_t shm_bytes) {
  json mounts = json::array();
  mounts.push_back(Mount("/proc", "proc", "proc", {}));
  mounts.push_back(Mount("/dev", "tmpfs", "tmpfs",
                         {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  mounts.push_back(Mount("/dev/pts", "devpts", "devpts",
                         {"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                          "mode=0620", "gid=5"}));
  mounts.push_back(Mount("/dev/shm", "tmpfs", "shm",
                         {"nosuid", "noexec", "nodev", "mode=1777",
                          absl::StrCat("size=", shm_bytes)}));
  mounts.push_back(
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  return mounts;
}

// /sys, and its cgroups where the process may mount them. A sysfs mount
// needs the network namespace's owner: a rootless step on the host's
// network gets the host's /sys bound instead.
void AddSysMounts(bool rootless, bool own_network, json* mounts) {
  if (rootless && !own_network) {
    mounts->push_back(Mount("/sys", "bind", "/sys",
                            {"rbind", "nosuid", "noexec", "nodev", "ro"}));
    return;
  }
  mounts->push_back(
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
  if (!rootless) {
    mounts->push_back(Mount("/sys/fs/cgroup", "cgroup", "cgroup",
                            {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  }
}

absl::StatusOr<json> UserMount(const ExecMount& m) {
  if (!IsCleanAbsolute(m.destination)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mount destination must be an absolute path without . "
                     "or .. components: \"",
                     m.destination, "\""));
  }
  std::vector<std::string> options;
  std::string source;
  if (m.type == "bind") {
    if (m.source.empty() || m.source[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "bind mount source must be an absolute path: \"", m.source, "\""));
    }
    source = m.source;
    options = {"rbind", m.read_only ? "ro" : "rw"};
  } else if (m.type == "tmpfs") {
    source = "tmpfs";
    options = {"nosuid", "nodev"};
    if (m.read_only) options.push_back("ro");
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported mount type \"", m.type, "\" (bind or tmpfs)"));
  }
  for (absl::string_view option :
       absl::StrSplit(m.options, ',', absl::SkipWhitespace())) {
    options.emplace_back(option);
  }
  return Mount(m.destination, m.type, source, std::move(options));
}

// Reads a whole file; an empty string when it does not exist.
absl::StatusOr<std::string> ReadFileIfExists(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return absl::InternalError(
        absl::StrCat("open ", path, ": ", ErrnoText(errno)));
  }
  std::string data;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::InternalError(
          absl::StrCat("read ", path, ": ", ErrnoText(err)));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

absl::Status WriteFile(const std::string& path, absl::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("create ", path, ": ", ErrnoText(errno)));
  }
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::InternalError(
          absl::StrCat("write ", path, ": ", ErrnoText(err)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (close(fd) != 0) {
    return absl::InternalError(
        absl::StrCat("close ", path, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

// The runtime's own error message from its JSON log, if it logged one.
std::string RuntimeError(const std::string& log_path) {
  absl::StatusOr<std::string> log = ReadFileIfExists(log_path);
  if (!log.ok()) return "";
  std::string message;
  for (absl::string_view line : absl::StrSplit(*log, '\n')) {
    if (line.empty()) continue;
    json entry = json::parse(line.begin(), line.end(), nullptr,
                             /*allow_exceptions=*/false);
    if (!entry.is_object()) continue;
    auto level = entry.find("level");
    auto msg = entry.find("msg");
    if (level == entry.end() || msg == entry.end() || !level->is_string() ||
        !msg->is_string()) {
      continue;
    }
    const std::string& lvl = level->get_ref<const std::string&>();
    if (lvl == "error" || lvl == "fatal" || lvl == "panic") {
      if (!message.empty()) message += "; ";
      message += msg->get_ref<const std::string&>();
    }
  }
  return message;
}

std::string HostsFile(const std::string& hostname) {
  std::string hosts = "127.0.0.1\tlocalhost";
  if (!hostname.empty() && hostname != "localhost") {
    absl::StrAppend(&hosts, " ", hostname);
  }
  absl::StrAppend(&hosts, "\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  return hosts;
}

absl::Status MakeDirectory(const std::string& what, const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be an absolute path: \"", dir, "\""));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("creating ", what, " ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

Network EffectiveNetwork(const ExecSpec& spec, const RuncOptions& options) {
  if (options.force_no_network) return Network::kNone;
  if (spec.network == Network::kSandbox && !options.private_network) {
    return Network::kHost;
  }
  return spec.network;
}

absl::StatusOr<json> MakeRuntimeSpec(const ExecSpec& spec,
                                     const RuncOptions& options,
                                     const std::string& bundle_dir,
                                     const std::string& netns_path) {
  if (spec.args.empty()) {
    return absl::InvalidArgumentError("no command to run (empty args)");
  }
  if (spec.rootfs.empty() || spec.rootfs[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("rootfs must be an absolute path: \"", spec.rootfs, "\""));
  }
  if (spec.cwd.empty() || spec.cwd[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "working directory must be an absolute path: \"", spec.cwd, "\""));
  }
  std::string bundle = bundle_dir;
  while (bundle.size() > 1 && bundle.back() == '/') bundle.pop_back();
  const std::string id = bundle.substr(bundle.rfind('/') + 1);
  if (bundle.empty() || bundle[0] != '/' || id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bundle directory must be an absolute path: \"", bundle_dir, "\""));
  }

  std::vector<std::string> env;
  bool has_path = false;
  for (const std::string& entry : spec.env) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry must be KEY=VALUE: \"", entry, "\""));
    }
    if (entry.compare(0, eq, "PATH") == 0) has_path = true;
    env.push_back(entry);
  }
  // Like Docker: runc looks args[0] up in the process's PATH.
  if (!has_path) env.insert(env.begin(), kDefaultPath);

  json process;
  process["terminal"] = false;
  process["user"] = {{"uid", spec.uid}, {"gid", spec.gid}};
  if (!spec.additional_gids.empty()) {
    process["user"]["additionalGids"] = spec.additional_gids;
  }
  process["args"] = spec.args;
  process["env"] = env;
  process["cwd"] = spec.cwd;
  json caps = json::array();
  if (!spec.no_capabilities) {
    for (const char* cap : kDefaultCapabilities) caps.push_back(cap);
  }
  process["capabilities"] = {
      {"bounding", caps}, {"effective", caps}, {"permitted", caps}};
  process["noNewPrivileges"] = true;
  // The hard limit cannot be raised without CAP_SYS_RESOURCE.
  rlim_t nofile = kMaxNofile;
  struct rlimit current;
  if (getrlimit(RLIMIT_NOFILE, &current) == 0 &&
      current.rlim_max != RLIM_INFINITY) {
    nofile = std::min(nofile, current.rlim_max);
  }
  process["rlimits"] = json::array(
      {{{"type", "RLIMIT_NOFILE"}, {"soft", nofile}, {"hard", nofile}}});

  const Network network = EffectiveNetwork(spec, options);
  if (network == Network::kSandbox && netns_path.empty()) {
    return absl::InvalidArgumentError("a sandboxed network needs a namespace");
  }
  json mounts = DefaultMounts(options.shm_bytes);
  AddSysMounts(options.rootless, network != Network::kHost, &mounts);
  if (network != Network::kNone) {
    mounts.push_back(Mount("/etc/resolv.conf", "bind",
                           absl::StrCat(bundle, "/resolv.conf"),
                           {"rbind", "ro"}));
    mounts.push_back(Mount("/etc/hosts", "bind", absl::StrCat(bundle, "/hosts"),
                           {"rbind", "ro"}));
  }
  for (const ExecMount& m : spec.mounts) {
    ASSIGN_OR_RETURN(json mount, UserMount(m));
    mounts.push_back(std::move(mount));
  }

  json linux;
  json namespaces = json::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount"}) {
    namespaces.push_back({{"type", ns}});
  }
  if (network == Network::kNone) {
    namespaces.push_back({{"type", "network"}});
  } else if (network == Network::kSandbox) {
    namespaces.push_back({{"type", "network"}, {"path", netns_path}});
  }
  linux["namespaces"] = std::move(namespaces);

  const int64_t memory =
      spec.memory_bytes > 0 ? spec.memory_bytes : options.default_memory_bytes;
  const int64_t pids =
      spec.pids_limit > 0 ? spec.pids_limit : options.default_pids_limit;
  if (options.rootless) {
    // No cgroup to put the container in: runc makes none, and a limit
    // cannot be kept.
    if (memory > 0 || pids > 0) {
      return absl::FailedPreconditionError(
          "memory and pids limits need cgroups, which an engine running "
          "without root cannot set");
    }
  } else {
    json resources;
    // Deny all devices; runc adds its defaults (null, zero, full, tty,
    // random, urandom, the pty devices).
    resources["devices"] = json::array({{{"allow", false}, {"access", "rwm"}}});
    if (memory > 0) resources["memory"] = {{"limit", memory}};
    if (pids > 0) resources["pids"] = {{"limit", pids}};
    linux["resources"] = std::move(resources);

    std::string parent = options.cgroup_parent;
    while (!parent.empty() && parent.back() == '/') parent.pop_back();
    if (!parent.empty() && parent[0] != '/') {
      parent.insert(parent.begin(), '/');
    }
    linux["cgroupsPath"] = absl::StrCat(parent, "/", id);
  }

  json masked = json::array();
  for (const char* path : kMaskedPaths) masked.push_back(path);
  linux["maskedPaths"] = std::move(masked);
  json readonly = json::array();
  for (const char* path : kReadonlyPaths) readonly.push_back(path);
  linux["readonlyPaths"] = std::move(readonly);
  linux["seccomp"] = DefaultSeccompProfile();

  json config;
  config["ociVersion"] = "1.0.2";
  config["process"] = std::move(process);
  config["root"] = {{"path", spec.rootfs}, {"readonly", false}};
  if (!spec.hostname.empty()) config["hostname"] = spec.hostname;
  config["mounts"] = std::move(mounts);
  config["linux"] = std::move(linux);
  return config;
}

absl::StatusOr<std::unique_ptr<RuncExecutor>> RuncExecutor::Create(
    RuncOptions options) {
  RETURN_IF_ERROR(MakeDirectory("state directory", options.state_dir));
  RETURN_IF_ERROR(MakeDirectory("bundles directory", options.bundles_dir));
  ASSIGN_OR_RETURN(std::string runtime_path, FindProgram(options.runtime));
  return std::unique_ptr<RuncExecutor>(
      new RuncExecutor(std::move(options), std::move(runtime_path)));
}

absl::StatusOr<SandboxNetwork*> RuncExecutor::SandboxNet() {
  absl::MutexLock lock(&network_mu_);
  if (network_ == nullptr) {
    if (preparing_.valid()) {
      ASSIGN_OR_RETURN(network_, preparing_.get());
    } else {
      ASSIGN_OR_RETURN(network_,
                       SandboxNetwork::Create(options_.sandbox_network));
    }
  }
  return network_.get();
}

void RuncExecutor::WillRunSandboxed() {
  if (!options_.private_network || options_.force_no_network ||
      options_.rootless) {
    return;
  }
  absl::MutexLock lock(&network_mu_);
  if (network_ != nullptr || preparing_.valid()) return;
  preparing_ = std::async(std::launch::async, [options = options_] {
    return SandboxNetwork::Create(options.sandbox_network);
  });
}

absl::Status RuncExecutor::PrepareNetwork() {
  if (!options_.private_network || options_.force_no_network) {
    return absl::OkStatus();
  }
  // Rootless: a slirp4netns for each step, nothing to make ahead.
  if (options_.rootless) return FindProgram("slirp4netns").status();
  return SandboxNet().status();
}

absl::StatusOr<ExecResult> RuncExecutor::Run(const ExecSpec& spec) {
  if (IsCancelled(spec)) {
    return absl::CancelledError("step cancelled before it started");
  }
  if (spec.rootfs.empty() || spec.rootfs[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("rootfs must be an absolute path: \"", spec.rootfs, "\""));
  }
  // runc refuses a rootfs path through symlinks.
  char* real = realpath(spec.rootfs.c_str(), nullptr);
  if (real == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("rootfs ", spec.rootfs, ": ", ErrnoText(errno)));
  }
  ExecSpec resolved = spec;
  resolved.rootfs = real;
  free(real);
  struct stat st;
  if (stat(resolved.rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rootfs ", spec.rootfs, " is not a directory"));
  }

  std::string bundle_template =
      absl::StrCat(options_.bundles_dir, "/sf-", getpid(), "-",
                   counter_.fetch_add(1), "-XXXXXX");
  if (mkdtemp(bundle_template.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("creating bundle directory in ",
                                            options_.bundles_dir, ": ",
                                            ErrnoText(errno)));
  }
  const std::string bundle = std::move(bundle_template);
  const std::string id = bundle.substr(bundle.rfind('/') + 1);
  absl::Cleanup remove_bundle = [&bundle] {
    std::error_code ec;
    std::filesystem::remove_all(bundle, ec);
  };

  // Declared after the bundle's cleanup: the namespace goes first.
  std::unique_ptr<SandboxNetwork::Attachment> attachment;
  std::unique_ptr<SlirpAttachment> slirp;
  std::string netns_path;
  const Network network = EffectiveNetwork(spec, options_);
  std::string resolv;
  if (network == Network::kSandbox && options_.rootless) {
    ASSIGN_OR_RETURN(std::string host,
                     ReadFileIfExists(options_.sandbox_network.resolv_conf));
    resolv = SandboxResolvConf(host);
    ASSIGN_OR_RETURN(slirp, SlirpAttachment::Create(bundle));
    netns_path = slirp->netns_path();
  } else if (network == Network::kSandbox) {
    ASSIGN_OR_RETURN(SandboxNetwork * net, SandboxNet());
    ASSIGN_OR_RETURN(resolv, net->ResolvConf());
    ASSIGN_OR_RETURN(attachment, net->Attach());
    netns_path = attachment->netns_path();
  } else if (network == Network::kHost) {
    ASSIGN_OR_RETURN(resolv, ReadFileIfExists("/etc/resolv.conf"));
  }
  ASSIGN_OR_RETURN(json config,
                   MakeRuntimeSpec(resolved, options_, bundle, netns_path));
  RETURN_IF_ERROR(
      WriteFile(bundle + "/config.json", stagefarm::json::Dump(config, 1)));
  if (network != Network::kNone) {
    RETURN_IF_ERROR(WriteFile(bundle + "/resolv.conf", resolv));
    RETURN_IF_ERROR(WriteFile(bundle + "/hosts", HostsFile(spec.hostname)));
  }

  const std::string log_path = bundle + "/runtime.log";
  std::vector<std::string> runc_args = {
      "--root", options_.state_dir, "--log", log_path, "--log-format", "json",
      "run",    "--bundle",         bundle,  id};
  // With a memory limit the container is kept after it exits, so that its
  // cgroups' counters say whether the kernel killed it for memory
  // (memory_kill.h); it is deleted below.
  const int64_t memory_limit = options_.rootless ? 0
                               : spec.memory_bytes > 0
                                   ? spec.memory_bytes
                                   : options_.default_memory_bytes;
  if (memory_limit > 0) runc_args.insert(runc_args.end() - 3, "--keep");
  // A foreground `runc run` forwards the signals it receives to the
  // container, and runc 1.1.5 (Debian's) forwards the SIGURG its own Go
  // runtime sends itself to preempt goroutines, which happens often on a
  // loaded machine: a shell that traps every signal (Bazel's test wrapper)
  // then sees its `wait` interrupted and reports 128+23. Without
  // asynchronous preemption the runtime sends none.
  const std::vector<std::string> runc_env = {"GODEBUG=asyncpreemptoff=1"};
  const bool to_files = !spec.stdout_file.empty() && !spec.stderr_file.empty();
  Child child;
  if (to_files) {
    int out = open(spec.stdout_file.c_str(),
                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = open(spec.stderr_file.c_str(),
                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    absl::StatusOr<Child> spawned =
        out < 0 || err < 0
            ? absl::InternalError(absl::StrCat(
                  "opening the step's output files: ", ErrnoText(errno)))
            : SpawnToFds(runtime_path_, runc_args, out, err, runc_env);
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    if (!spawned.ok()) return spawned.status();
    child = *spawned;
  } else {
    ASSIGN_OR_RETURN(child, Spawn(runtime_path_, runc_args, {}, runc_env));
  }

  ExecResult result;
  auto append = [&spec, &result](absl::string_view chunk) {
    if (spec.on_output) spec.on_output(chunk);
    std::string& tail = result.output_tail;
    tail.append(chunk.data(), chunk.size());
    if (tail.size() > kTailBytes) tail.erase(0, tail.size() - kTailBytes);
  };

  // A pidfd wakes the loop the moment runc exits (Linux 5.3+); without one
  // the loop looks every few milliseconds.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child.pid, 0));
  bool eof = child.output_fd < 0;  // output goes to files
  bool exited = false;
  bool cancelled = false;
  int wait_status = 0;
  absl::Status wait_error;
  absl::Time exit_time;
  absl::Time next_kill;
  int kill_attempts = 0;
  std::vector<char> buf(64 * 1024);
  while (true) {
    if (!exited) {
      pid_t r = WaitPidRetry(child.pid, &wait_status, WNOHANG);
      if (r == child.pid) {
        exited = true;
        exit_time = absl::Now();
      } else if (r < 0) {
        wait_error =
            absl::InternalError(absl::StrCat("waitpid: ", ErrnoText(errno)));
        exited = true;
        exit_time = absl::Now();
      }
    }
    // With a pid namespace every process of the container is gone once runc
    // exits; the grace period only bounds the wait for whatever else might
    // hold the pipe's write end.
    if (exited && (eof || absl::Now() - exit_time > absl::Seconds(2))) break;
    if (!cancelled && IsCancelled(spec)) {
      cancelled = true;
      next_kill = absl::Now();
    }
    if (cancelled && !exited && absl::Now() >= next_kill) {
      // The container may not exist yet (runc still creating it) or may
      // already be gone: retry until runc run exits, then kill runc itself.
      if (++kill_attempts <= 50) {
        (void)RunCommand(runtime_path_,
                         {"--root", options_.state_dir, "kill", id, "KILL"});
      } else {
        kill(child.pid, SIGKILL);
      }
      next_kill = absl::Now() + absl::Milliseconds(200);
    }
    struct pollfd pfds[2];
    nfds_t nfds = 0;
    if (!eof) pfds[nfds++] = {child.output_fd, POLLIN, 0};
    if (!exited && pidfd >= 0) pfds[nfds++] = {pidfd, POLLIN, 0};
    int timeout_ms = exited ? 10 : pidfd >= 0 ? 100 : eof ? 5 : 100;
    int n = poll(nfds > 0 ? pfds : nullptr, nfds, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (!eof) eof = true;
      continue;
    }
    if (eof || n == 0 ||
        (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
      continue;  // runc exited (waitpid above), or nothing yet
    }
    ssize_t got = read(child.output_fd, buf.data(), buf.size());
    if (got > 0) {
      append(absl::string_view(buf.data(), static_cast<size_t>(got)));
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      eof = true;
    }
  }
  if (child.output_fd >= 0) close(child.output_fd);
  if (pidfd >= 0) close(pidfd);

  if (memory_limit > 0 && !cancelled && wait_error.ok()) {
    absl::StatusOr<std::string> state = ReadFileIfExists(
        absl::StrCat(options_.state_dir, "/", id, "/state.json"));
    result.memory_limit_bytes = memory_limit;
    result.killed_for_memory =
        state.ok() &&
        KilledForMemory(*state, ExitCodeFromWaitStatus(wait_status));
  }
  // `runc run` deletes the container when it exits normally (unless kept,
  // above); after a kill or a crash of runc the state may remain.
  struct stat state_st;
  if (cancelled || !wait_error.ok() ||
      stat(absl::StrCat(options_.state_dir, "/", id).c_str(), &state_st) == 0) {
    (void)RunCommand(runtime_path_,
                     {"--root", options_.state_dir, "delete", "--force", id});
  }

  if (cancelled) return absl::CancelledError("step cancelled");
  RETURN_IF_ERROR(wait_error);
  result.exit_code = ExitCodeFromWaitStatus(wait_status);
  if (result.exit_code != 0) {
    std::string runtime_error = RuntimeError(log_path);
    if (!runtime_error.empty()) {
      // The runtime itself failed, normally before the process started.
      if (absl::StrContains(runtime_error,
                            "unable to start container process: exec")) {
        return absl::InvalidArgumentError(runtime_error);
      }
      return absl::InternalError(runtime_error);
    }
  }
  return result;
}

}  // namespace stagefarm::executor
