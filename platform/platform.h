// OCI platforms: "os/architecture[/variant]" as docker and buildx write
// them, normalized the way containerd does (x86_64 -> amd64, aarch64 ->
// arm64, arm -> arm/v7, ...), so two spellings of one platform compare
// equal. Pure; thread-compatible.
#ifndef STAGEFARM_PLATFORM_PLATFORM_H_
#define STAGEFARM_PLATFORM_PLATFORM_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::platform {

struct Platform {
  std::string os = "linux";
  std::string architecture;  // GOARCH names: amd64, arm64, arm, 386, ...
  std::string variant;       // v7, v6, v8 for arm; "" when none

  // "linux/arm64", "linux/arm/v7".
  std::string String() const;
  // "linux_arm64", "linux_arm_v7": a directory name, as buildx writes
  // one per platform for type=local.
  std::string DirName() const;
  bool operator==(const Platform& o) const {
    return os == o.os && architecture == o.architecture && variant == o.variant;
  }
  bool operator!=(const Platform& o) const { return !(*this == o); }
  bool operator<(const Platform& o) const { return String() < o.String(); }
};

// Parses and normalizes "linux/arm64", "arm64", "linux/aarch64",
// "linux/arm/v7", "linux/x86_64". INVALID_ARGUMENT (quoting the text) for
// an empty part, an unknown architecture or an os other than linux.
absl::StatusOr<Platform> Parse(absl::string_view text);

// A comma-separated list ("linux/amd64,linux/arm64"), duplicates removed,
// order kept. INVALID_ARGUMENT for an empty list or a bad entry.
absl::StatusOr<std::vector<Platform>> ParseList(absl::string_view text);

// The platform an OCI image config or index entry describes (its "os",
// "architecture" and "variant" fields), normalized; arm64's "v8" variant
// is dropped as containerd does.
Platform FromOci(absl::string_view os, absl::string_view architecture,
                 absl::string_view variant);

// The platform of this machine's kernel and processes.
Platform Host();

// The kernel's name for an architecture (uname -m, the ELF machine the
// emulators are named after): amd64 -> x86_64, arm64 -> aarch64,
// arm -> arm, 386 -> i386, ppc64le -> ppc64le, ...
std::string KernelArch(const Platform& p);

}  // namespace stagefarm::platform

#endif  // STAGEFARM_PLATFORM_PLATFORM_H_
