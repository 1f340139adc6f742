#include "platform/emulation.h"

#include <dirent.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fs_util.h"
#include "common/status_macros.h"

namespace stagefarm::platform {

namespace {

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Native platforms: the host's, and 32-bit x86 on an x86-64 kernel.
std::vector<Platform> Native() {
  Platform host = Host();
  std::vector<Platform> out = {host};
  if (host.architecture == "amd64") {
    Platform p;
    p.architecture = "386";
    out.push_back(p);
  }
  return out;
}

bool IsNative(const Platform& p) {
  for (const Platform& n : Native()) {
    if (n == p) return true;
  }
  return false;
}

// One registered handler's file: "enabled", "interpreter PATH",
// "flags: POCF", ...
Runner ReadHandler(const std::string& binfmt_dir, const std::string& name,
                   const Platform& p) {
  Runner r;
  r.platform = p;
  r.handler = name;
  auto text = ReadFileToString(binfmt_dir + "/" + name);
  if (!text.ok()) return r;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (line == "enabled") r.enabled = true;
    if (absl::ConsumePrefix(&line, "interpreter "))
      r.interpreter = std::string(line);
    if (absl::ConsumePrefix(&line, "flags:")) {
      r.flags = std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return r;
}

}  // namespace

bool HandlerPlatform(const std::string& handler, Platform* out) {
  absl::string_view name = handler;
  if (!absl::ConsumePrefix(&name, "qemu-")) return false;
  // qemu names the kernel's architecture; a few differ from OCI's.
  static const std::pair<const char*, const char*> kNames[] = {
      {"aarch64", "linux/arm64"},   {"arm", "linux/arm/v7"},
      {"i386", "linux/386"},        {"x86_64", "linux/amd64"},
      {"riscv64", "linux/riscv64"}, {"ppc64le", "linux/ppc64le"},
      {"s390x", "linux/s390x"},     {"mips64el", "linux/mips64le"},
      {"mips64", "linux/mips64"},   {"mipsel", "linux/mipsle"},
      {"mips", "linux/mips"},       {"loongarch64", "linux/loong64"},
      {"ppc64", "linux/ppc64"},
  };
  for (const auto& [qemu, oci] : kNames) {
    if (name == qemu) {
      *out = *Parse(oci);
      return true;
    }
  }
  return false;
}

std::vector<Runner> Runners(const std::string& binfmt_dir) {
  std::vector<Runner> out;
  for (const Platform& p : Native()) {
    Runner r;
    r.platform = p;
    r.native = true;
    r.enabled = true;
    out.push_back(r);
  }
  for (const std::string& name : ListDir(binfmt_dir)) {
    Platform p;
    if (!HandlerPlatform(name, &p) || IsNative(p)) continue;
    out.push_back(ReadHandler(binfmt_dir, name, p));
    if (p.architecture == "arm") {
      // The arm emulator runs every 32-bit arm variant.
      Runner v6 = out.back();
      v6.platform.variant = "v6";
      out.push_back(v6);
    }
  }
  // Native ones first, the host's leading; emulated ones by platform.
  std::stable_sort(
      out.begin() + Native().size(), out.end(),
      [](const Runner& a, const Runner& b) { return a.platform < b.platform; });
  return out;
}

std::vector<Platform> UsablePlatforms(const std::string& binfmt_dir) {
  std::vector<Platform> out;
  for (const Runner& r : Runners(binfmt_dir)) {
    if (r.usable()) out.push_back(r.platform);
  }
  return out;
}

absl::Status CheckRunnable(const Platform& p, const std::string& binfmt_dir) {
  const Runner* found = nullptr;
  std::vector<Runner> runners = Runners(binfmt_dir);
  for (const Runner& r : runners) {
    if (r.platform == p) found = &r;
  }
  const std::string how =
      "install Debian's qemu-user-static and run `stagefarm emulation "
      "install` as root";
  if (found == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run ", p.String(), " programs on this ", Host().String(),
        " machine: no emulator is registered for it (", how, ")"));
  }
  if (found->usable()) return absl::OkStatus();
  if (!found->enabled) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run ", p.String(), " programs: the emulator ", found->handler,
        " is registered but disabled (", how, ")"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot run ", p.String(), " programs in a sandbox: the emulator ",
      found->handler, " is registered without the F flag (flags \"",
      found->flags, "\"), so it is not found inside the container (", how,
      ", which registers it with F)"));
}

absl::StatusOr<Offered> Offer(absl::string_view asked,
                              const std::string& binfmt_dir) {
  std::vector<Platform> wanted;
  if (asked.empty()) {
    wanted = UsablePlatforms(binfmt_dir);
  } else {
    ASSIGN_OR_RETURN(wanted, ParseList(asked));
  }
  Offered out;
  for (const Platform& p : wanted) {
    RETURN_IF_ERROR(CheckRunnable(p, binfmt_dir));
    (IsNative(p) ? out.native : out.emulated).push_back(p);
  }
  return out;
}

absl::StatusOr<std::vector<Platform>> Install(const std::string& binfmt_dir,
                                              const std::string& conf_dir) {
  std::string reg = binfmt_dir + "/register";
  if (access(reg.c_str(), F_OK) != 0) {
    if (mount("binfmt_misc", binfmt_dir.c_str(), "binfmt_misc", 0, nullptr) !=
        0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot mount binfmt_misc on ", binfmt_dir, ": ",
                       strerror(errno), " (registering emulators needs root)"));
    }
  }
  std::vector<Platform> out;
  bool any_conf = false;
  for (const std::string& file : ListDir(conf_dir)) {
    if (!absl::StartsWith(file, "qemu-") || !absl::EndsWith(file, ".conf"))
      continue;
    any_conf = true;
    std::string name = file.substr(0, file.size() - 5);
    Platform p;
    if (!HandlerPlatform(name, &p) || IsNative(p)) continue;
    auto text = ReadFileToString(conf_dir + "/" + file);
    if (!text.ok()) continue;
    // ":name:type:offset:magic:mask:interpreter:flags"; the magic and mask
    // hold escapes the kernel decodes, never a newline.
    std::string line(absl::StripTrailingAsciiWhitespace(*text));
    size_t last = line.rfind(':');
    if (line.empty() || line[0] != ':' || last == std::string::npos) continue;
    std::string head = line.substr(0, last);
    std::string flags = line.substr(last + 1);
    size_t prev = head.rfind(':');
    std::string interpreter = head.substr(prev + 1);
    if (access(interpreter.c_str(), X_OK) != 0) continue;
    Runner now = ReadHandler(binfmt_dir, name, p);
    bool registered = access((binfmt_dir + "/" + name).c_str(), F_OK) == 0;
    if (registered && now.usable()) {
      out.push_back(p);
      continue;
    }
    if (registered) {
      // Replace a registration without F (or a disabled one).
      RETURN_IF_ERROR(WriteStringToFile(binfmt_dir + "/" + name, "-1"));
    }
    if (flags.find('F') == std::string::npos) flags += "F";
    absl::Status st = WriteStringToFile(reg, head + ":" + flags);
    if (!st.ok()) {
      return absl::Status(
          st.code(), absl::StrCat("registering ", name, ": ", st.message()));
    }
    out.push_back(p);
  }
  if (!any_conf) {
    return absl::FailedPreconditionError(
        absl::StrCat("no qemu handler definitions in ", conf_dir,
                     ": install Debian's qemu-user-static (apt-get install "
                     "qemu-user-static)"));
  }
  return out;
}

}  // namespace stagefarm::platform
