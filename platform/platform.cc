#include "platform/platform.h"

#include <sys/utsname.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stagefarm::platform {

namespace {

struct Arch {
  const char* name;    // GOARCH, as OCI writes it
  const char* kernel;  // uname -m
};

// The architectures Debian's kernels and emulators know, by OCI name.
constexpr Arch kArchs[] = {
    {"amd64", "x86_64"},        {"386", "i386"},
    {"arm64", "aarch64"},       {"arm", "arm"},
    {"ppc64le", "ppc64le"},     {"ppc64", "ppc64"},
    {"s390x", "s390x"},         {"riscv64", "riscv64"},
    {"mips64le", "mips64el"},   {"mips64", "mips64"},
    {"mipsle", "mipsel"},       {"mips", "mips"},
    {"loong64", "loongarch64"},
};

// Normalizes architecture and variant in place; false for an unknown
// architecture.
bool Normalize(std::string* arch, std::string* variant) {
  std::string a = absl::AsciiStrToLower(*arch);
  std::string v = absl::AsciiStrToLower(*variant);
  if (!v.empty() && absl::ascii_isdigit(v[0])) v = "v" + v;
  if (a == "x86_64" || a == "x86-64") a = "amd64";
  if (a == "i386" || a == "i686") a = "386";
  if (a == "aarch64") a = "arm64";
  if (a == "armhf") {
    a = "arm";
    if (v.empty()) v = "v7";
  }
  if (a == "armel") {
    a = "arm";
    if (v.empty()) v = "v6";
  }
  if (a == "arm64" && v == "v8") v.clear();
  if (a == "amd64" && v == "v1") v.clear();
  if (a == "arm" && v.empty()) v = "v7";
  bool known = false;
  for (const Arch& k : kArchs) known = known || a == k.name;
  if (!known) return false;
  *arch = a;
  *variant = v;
  return true;
}

}  // namespace

std::string Platform::String() const {
  std::string s = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) absl::StrAppend(&s, "/", variant);
  return s;
}

std::string Platform::DirName() const {
  std::string s = absl::StrCat(os, "_", architecture);
  if (!variant.empty()) absl::StrAppend(&s, "_", variant);
  return s;
}

absl::StatusOr<Platform> Parse(absl::string_view text) {
  std::vector<std::string> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(text), '/');
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("platform \"", text, "\": ", why,
                     " (expected OS/ARCH[/VARIANT], e.g. linux/arm64)"));
  };
  for (const std::string& p : parts) {
    if (p.empty()) return bad("empty part");
  }
  Platform out;
  if (parts.size() == 1) {
    // "arm64": an architecture alone means linux, as in docker.
    out.architecture = parts[0];
  } else if (parts.size() == 2 || parts.size() == 3) {
    out.os = absl::AsciiStrToLower(parts[0]);
    out.architecture = parts[1];
    if (parts.size() == 3) out.variant = parts[2];
  } else {
    return bad("too many parts");
  }
  if (out.os != "linux") {
    return bad(absl::StrCat("only linux images are built, not ", out.os));
  }
  if (!Normalize(&out.architecture, &out.variant)) {
    return bad(absl::StrCat("unknown architecture ", out.architecture));
  }
  return out;
}

absl::StatusOr<std::vector<Platform>> ParseList(absl::string_view text) {
  std::vector<Platform> out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    absl::StatusOr<Platform> p = Parse(item);
    if (!p.ok()) return p.status();
    bool seen = false;
    for (const Platform& q : out) seen = seen || q == *p;
    if (!seen) out.push_back(*p);
  }
  return out;
}

Platform FromOci(absl::string_view os, absl::string_view architecture,
                 absl::string_view variant) {
  Platform p;
  p.os = absl::AsciiStrToLower(os);
  p.architecture = std::string(architecture);
  p.variant = std::string(variant);
  std::string arch = p.architecture, var = p.variant;
  if (Normalize(&arch, &var)) {
    p.architecture = arch;
    p.variant = var;
  }
  return p;
}

Platform Host() {
  struct utsname u;
  Platform p;
  p.architecture = "amd64";
  if (uname(&u) != 0) return p;
  std::string m = u.machine;
  for (const Arch& k : kArchs) {
    if (m == k.kernel) p.architecture = k.name;
  }
  if (absl::StartsWith(m, "armv")) {
    // armv7l -> arm/v7, armv6l -> arm/v6.
    p.architecture = "arm";
    p.variant = m.substr(3, 2);
  }
  std::string arch = p.architecture, var = p.variant;
  if (Normalize(&arch, &var)) {
    p.architecture = arch;
    p.variant = var;
  }
  return p;
}

std::string KernelArch(const Platform& p) {
  for (const Arch& k : kArchs) {
    if (p.architecture == k.name) return k.kernel;
  }
  return p.architecture;
}

}  // namespace stagefarm::platform
