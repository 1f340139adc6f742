// Checks the OCI runtime spec RuncExecutor writes, without running runc.
#include "executor/runc_executor.h"

#include <sys/resource.h>

#include <algorithm>
#include <string>
#include <vector>

#include "executor/seccomp_profile.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stagefarm::executor {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

constexpr char kBundle[] = "/var/lib/sf/bundles/sf-1-2-abc";

ExecSpec BaseSpec() {
  ExecSpec spec;
  spec.rootfs = "/var/lib/sf/rootfs";
  spec.args = {"sh", "-c", "echo hi"};
  spec.env = {"PATH=/bin", "FOO=bar"};
  spec.cwd = "/work";
  spec.uid = 1000;
  spec.gid = 1001;
  spec.additional_gids = {10, 20};
  spec.hostname = "buildkitsandbox";
  return spec;
}

json MustSpec(const ExecSpec& spec, const RuncOptions& options = {}) {
  absl::StatusOr<json> config =
      MakeRuntimeSpec(spec, options, kBundle, "/run/netns/sf0s2");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : json();
}

std::vector<std::string> Strings(const json& array) {
  return array.get<std::vector<std::string>>();
}

std::vector<std::string> NamespaceTypes(const json& config) {
  std::vector<std::string> types;
  for (const json& ns : config["linux"]["namespaces"]) {
    types.push_back(ns["type"].get<std::string>());
  }
  return types;
}

const json* FindMount(const json& config, const std::string& destination) {
  for (const json& mount : config["mounts"]) {
    if (mount["destination"] == destination) return &mount;
  }
  return nullptr;
}

TEST(MakeRuntimeSpecTest, ProcessBasics) {
  json config = MustSpec(BaseSpec());
  EXPECT_EQ(config["ociVersion"], "1.0.2");
  const json& process = config["process"];
  EXPECT_EQ(process["terminal"], false);
  EXPECT_EQ(process["user"]["uid"], 1000);
  EXPECT_EQ(process["user"]["gid"], 1001);
  EXPECT_EQ(process["user"]["additionalGids"], json({10, 20}));
  EXPECT_THAT(Strings(process["args"]), ElementsAre("sh", "-c", "echo hi"));
  EXPECT_THAT(Strings(process["env"]), ElementsAre("PATH=/bin", "FOO=bar"));
  EXPECT_EQ(process["cwd"], "/work");
  EXPECT_EQ(process["noNewPrivileges"], true);
  EXPECT_EQ(config["root"]["path"], "/var/lib/sf/rootfs");
  EXPECT_EQ(config["root"]["readonly"], false);
  EXPECT_EQ(config["hostname"], "buildkitsandbox");
}

TEST(MakeRuntimeSpecTest, DefaultPathWhenEnvHasNone) {
  ExecSpec spec = BaseSpec();
  spec.env = {"FOO=bar"};
  json config = MustSpec(spec);
  EXPECT_THAT(Strings(config["process"]["env"]),
              ElementsAre("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/"
                          "bin:/sbin:/bin",
                          "FOO=bar"));
}

TEST(MakeRuntimeSpecTest, DockerCapabilities) {
  json config = MustSpec(BaseSpec());
  const json& caps = config["process"]["capabilities"];
  const std::vector<std::string> docker = {"CAP_CHOWN",
                                           "CAP_DAC_OVERRIDE",
                                           "CAP_FSETID",
                                           "CAP_FOWNER",
                                           "CAP_MKNOD",
                                           "CAP_NET_RAW",
                                           "CAP_SETGID",
                                           "CAP_SETUID",
                                           "CAP_SETFCAP",
                                           "CAP_SETPCAP",
                                           "CAP_NET_BIND_SERVICE",
                                           "CAP_SYS_CHROOT",
                                           "CAP_KILL",
                                           "CAP_AUDIT_WRITE"};
  for (const char* set : {"bounding", "effective", "permitted"}) {
    EXPECT_THAT(Strings(caps[set]), UnorderedElementsAreArray(docker)) << set;
  }
  EXPECT_FALSE(caps.contains("inheritable") && !caps["inheritable"].empty());
  EXPECT_FALSE(caps.contains("ambient") && !caps["ambient"].empty());
}

TEST(MakeRuntimeSpecTest, NofileRlimitNotAboveHardLimit) {
  struct rlimit current;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &current), 0);
  uint64_t expected = 1048576;
  if (current.rlim_max != RLIM_INFINITY) {
    expected = std::min<uint64_t>(expected, current.rlim_max);
  }
  json config = MustSpec(BaseSpec());
  ASSERT_EQ(config["process"]["rlimits"].size(), 1u);
  const json& rlimit = config["process"]["rlimits"][0];
  EXPECT_EQ(rlimit["type"], "RLIMIT_NOFILE");
  EXPECT_EQ(rlimit["soft"].get<uint64_t>(), expected);
  EXPECT_EQ(rlimit["hard"].get<uint64_t>(), expected);
}

TEST(MakeRuntimeSpecTest, SandboxNetworkJoinsItsNamespace) {
  json config = MustSpec(BaseSpec());
  EXPECT_THAT(NamespaceTypes(config),
              UnorderedElementsAre("pid", "ipc", "uts", "mount", "network"));
  for (const json& ns : config["linux"]["namespaces"]) {
    if (ns["type"] == "network") EXPECT_EQ(ns["path"], "/run/netns/sf0s2");
  }
  EXPECT_NE(FindMount(config, "/etc/resolv.conf"), nullptr);
  EXPECT_NE(FindMount(config, "/etc/hosts"), nullptr);
  absl::StatusOr<json> without = MakeRuntimeSpec(BaseSpec(), {}, kBundle);
  EXPECT_EQ(without.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MakeRuntimeSpecTest, PrivateNetworkOffMeansTheHosts) {
  RuncOptions options;
  options.private_network = false;
  EXPECT_EQ(EffectiveNetwork(BaseSpec(), options), Network::kHost);
  json config = MustSpec(BaseSpec(), options);
  EXPECT_THAT(NamespaceTypes(config),
              UnorderedElementsAre("pid", "ipc", "uts", "mount"));
}

TEST(MakeRuntimeSpecTest, NamespacesWithHostNetwork) {
  ExecSpec spec = BaseSpec();
  spec.network = Network::kHost;
  json config = MustSpec(spec);
  EXPECT_THAT(NamespaceTypes(config),
              UnorderedElementsAre("pid", "ipc", "uts", "mount"));
  const json* resolv = FindMount(config, "/etc/resolv.conf");
  ASSERT_NE(resolv, nullptr);
  EXPECT_EQ((*resolv)["type"], "bind");
  EXPECT_EQ((*resolv)["source"], std::string(kBundle) + "/resolv.conf");
  EXPECT_THAT(Strings((*resolv)["options"]), Contains("ro"));
  const json* hosts = FindMount(config, "/etc/hosts");
  ASSERT_NE(hosts, nullptr);
  EXPECT_EQ((*hosts)["source"], std::string(kBundle) + "/hosts");
  EXPECT_THAT(Strings((*hosts)["options"]), Contains("ro"));
}

TEST(MakeRuntimeSpecTest, NamespacesWithoutNetwork) {
  ExecSpec spec = BaseSpec();
  spec.network = Network::kNone;
  json config = MustSpec(spec);
  EXPECT_THAT(NamespaceTypes(config),
              UnorderedElementsAre("pid", "ipc", "uts", "mount", "network"));
  EXPECT_EQ(FindMount(config, "/etc/resolv.conf"), nullptr);
  EXPECT_EQ(FindMount(config, "/etc/hosts"), nullptr);
}

TEST(MakeRuntimeSpecTest, ForceNoNetworkWins) {
  RuncOptions options;
  options.force_no_network = true;
  json config = MustSpec(BaseSpec(), options);
  EXPECT_THAT(NamespaceTypes(config), Contains("network"));
  EXPECT_EQ(FindMount(config, "/etc/resolv.conf"), nullptr);
}

TEST(MakeRuntimeSpecTest, DefaultMountsFirst) {
  json config = MustSpec(BaseSpec());
  std::vector<std::string> destinations;
  for (const json& mount : config["mounts"]) {
    destinations.push_back(mount["destination"].get<std::string>());
  }
  ASSERT_GE(destinations.size(), 7u);
  EXPECT_THAT(
      std::vector<std::string>(destinations.begin(), destinations.begin() + 7),
      ElementsAre("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                  "/sys", "/sys/fs/cgroup"));
  const json* dev = FindMount(config, "/dev");
  EXPECT_EQ((*dev)["type"], "tmpfs");
  EXPECT_THAT(Strings((*dev)["options"]),
              ElementsAre("nosuid", "strictatime", "mode=755", "size=65536k"));
  const json* sys = FindMount(config, "/sys");
  EXPECT_EQ((*sys)["type"], "sysfs");
  EXPECT_THAT(Strings((*sys)["options"]), Contains("ro"));
  const json* cgroup = FindMount(config, "/sys/fs/cgroup");
  EXPECT_EQ((*cgroup)["type"], "cgroup");
  EXPECT_THAT(Strings((*cgroup)["options"]), Contains("ro"));
}

TEST(MakeRuntimeSpecTest, UserMounts) {
  ExecSpec spec = BaseSpec();
  ExecMount ro;
  ro.source = "/host/cache";
  ro.destination = "/cache";
  ro.read_only = true;
  ExecMount rw;
  rw.source = "/host/out";
  rw.destination = "/out";
  ExecMount tmp;
  tmp.type = "tmpfs";
  tmp.destination = "/scratch";
  tmp.options = "size=64m,mode=1777";
  spec.mounts = {ro, rw, tmp};
  json config = MustSpec(spec);

  const json* cache = FindMount(config, "/cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ((*cache)["type"], "bind");
  EXPECT_EQ((*cache)["source"], "/host/cache");
  EXPECT_THAT(Strings((*cache)["options"]), ElementsAre("rbind", "ro"));
  const json* out = FindMount(config, "/out");
  ASSERT_NE(out, nullptr);
  EXPECT_THAT(Strings((*out)["options"]), ElementsAre("rbind", "rw"));
  const json* scratch = FindMount(config, "/scratch");
  ASSERT_NE(scratch, nullptr);
  EXPECT_EQ((*scratch)["type"], "tmpfs");
  EXPECT_EQ((*scratch)["source"], "tmpfs");
  EXPECT_THAT(Strings((*scratch)["options"]),
              ElementsAre("nosuid", "nodev", "size=64m", "mode=1777"));
  // User mounts come after the generated /etc files, so they can replace
  // them.
  EXPECT_EQ(config["mounts"].back()["destination"], "/scratch");
}

TEST(MakeRuntimeSpecTest, InvalidSpecs) {
  RuncOptions options;
  {
    ExecSpec spec = BaseSpec();
    spec.args.clear();
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    ExecSpec spec = BaseSpec();
    spec.cwd = "work";
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    ExecSpec spec = BaseSpec();
    spec.rootfs = "rootfs";
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    ExecSpec spec = BaseSpec();
    spec.env = {"NOEQUALS"};
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    ExecSpec spec = BaseSpec();
    ExecMount m;
    m.source = "/a";
    m.destination = "/x/../etc";
    spec.mounts = {m};
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    ExecSpec spec = BaseSpec();
    ExecMount m;
    m.type = "overlay";
    m.destination = "/x";
    spec.mounts = {m};
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    ExecSpec spec = BaseSpec();
    ExecMount m;
    m.source = "relative";
    m.destination = "/x";
    spec.mounts = {m};
    EXPECT_EQ(MakeRuntimeSpec(spec, options, kBundle).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(MakeRuntimeSpecTest, MaskedAndReadonlyPaths) {
  json config = MustSpec(BaseSpec());
  // As `runc spec` 1.1.5 generates them (Docker's additions included).
  EXPECT_THAT(Strings(config["linux"]["maskedPaths"]),
              ElementsAre("/proc/acpi", "/proc/asound", "/proc/kcore",
                          "/proc/keys", "/proc/latency_stats",
                          "/proc/timer_list", "/proc/timer_stats",
                          "/proc/sched_debug", "/sys/firmware", "/proc/scsi"));
  EXPECT_THAT(Strings(config["linux"]["readonlyPaths"]),
              ElementsAre("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"));
}

TEST(MakeRuntimeSpecTest, Resources) {
  {
    json config = MustSpec(BaseSpec());
    const json& resources = config["linux"]["resources"];
    EXPECT_FALSE(resources.contains("memory"));
    EXPECT_FALSE(resources.contains("pids"));
    EXPECT_EQ(resources["devices"],
              json::parse(R"([{"allow": false, "access": "rwm"}])"));
  }
  {
    RuncOptions options;
    options.default_memory_bytes = 1 << 30;
    options.default_pids_limit = 500;
    json config = MustSpec(BaseSpec(), options);
    EXPECT_EQ(config["linux"]["resources"]["memory"]["limit"], 1 << 30);
    EXPECT_EQ(config["linux"]["resources"]["pids"]["limit"], 500);
  }
  {
    RuncOptions options;
    options.default_memory_bytes = 1 << 30;
    options.default_pids_limit = 500;
    ExecSpec spec = BaseSpec();
    spec.memory_bytes = 64 << 20;
    spec.pids_limit = 20;
    json config = MustSpec(spec, options);
    EXPECT_EQ(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
    EXPECT_EQ(config["linux"]["resources"]["pids"]["limit"], 20);
  }
}

TEST(MakeRuntimeSpecTest, CgroupsPathUsesBundleName) {
  json config = MustSpec(BaseSpec());
  EXPECT_EQ(config["linux"]["cgroupsPath"], "/stagefarm/sf-1-2-abc");
  RuncOptions options;
  options.cgroup_parent = "builds/";
  absl::StatusOr<json> other =
      MakeRuntimeSpec(BaseSpec(), options, "/b/sf-9-9-xyz/", "/run/netns/x");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ((*other)["linux"]["cgroupsPath"], "/builds/sf-9-9-xyz");
}

TEST(MakeRuntimeSpecTest, RootlessHasNoCgroupsAndBindsSysOnTheHostNetwork) {
  RuncOptions options;
  options.rootless = true;
  json config = MustSpec(BaseSpec(), options);
  EXPECT_FALSE(config["linux"].contains("cgroupsPath"));
  EXPECT_FALSE(config["linux"].contains("resources"));
  EXPECT_EQ(FindMount(config, "/sys/fs/cgroup"), nullptr);
  ASSERT_NE(FindMount(config, "/sys"), nullptr);
  EXPECT_EQ((*FindMount(config, "/sys"))["type"], "sysfs");

  ExecSpec host = BaseSpec();
  host.network = Network::kHost;
  json on_host = MustSpec(host, options);
  ASSERT_NE(FindMount(on_host, "/sys"), nullptr);
  EXPECT_EQ((*FindMount(on_host, "/sys"))["type"], "bind");
  EXPECT_THAT(Strings((*FindMount(on_host, "/sys"))["options"]),
              Contains("ro"));

  options.default_pids_limit = 100;
  EXPECT_EQ(MakeRuntimeSpec(BaseSpec(), options, kBundle, "/run/netns/x")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MakeRuntimeSpecTest, Seccomp) {
  json config = MustSpec(BaseSpec());
  const json& seccomp = config["linux"]["seccomp"];
  EXPECT_EQ(seccomp, DefaultSeccompProfile());
  EXPECT_EQ(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
  EXPECT_THAT(
      Strings(seccomp["architectures"]),
      ElementsAre("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"));
  ASSERT_EQ(seccomp["syscalls"].size(), 1u);
  const json& rule = seccomp["syscalls"][0];
  EXPECT_EQ(rule["action"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(rule["errnoRet"], 1);
  std::vector<std::string> names = Strings(rule["names"]);
  for (const char* name :
       {"mount", "umount2", "unshare", "setns", "ptrace", "bpf", "keyctl",
        "kexec_load", "init_module", "open_tree", "fsopen", "userfaultfd",
        "perf_event_open", "pivot_root", "reboot", "swapon"}) {
    EXPECT_THAT(names, Contains(name));
  }
  EXPECT_THAT(names, Not(Contains("personality")));
  EXPECT_THAT(names, Not(IsEmpty()));
}

}  // namespace
}  // namespace stagefarm::executor
