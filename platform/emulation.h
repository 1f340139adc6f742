// User-mode emulation of foreign platforms through the kernel's
// binfmt_misc and Debian's qemu-user-static: what this machine can run,
// registering the emulators, and the check a RUN step makes first.
//
// A handler registered with the F ("fix binary") flag has its interpreter
// opened when it is registered, so a foreign binary inside a sandbox whose
// root file system has no emulator still runs. Handlers without it do not
// work in a sandbox, and the check says so.
// Thread-safe (reads the kernel's files on each call).
#ifndef STAGEFARM_PLATFORM_EMULATION_H_
#define STAGEFARM_PLATFORM_EMULATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "platform/platform.h"

namespace stagefarm::platform {

inline constexpr char kBinfmtDir[] = "/proc/sys/fs/binfmt_misc";
// Debian's qemu-user-static ships one handler definition a file here.
inline constexpr char kBinfmtConfDir[] = "/usr/lib/binfmt.d";

struct Runner {
  Platform platform;
  bool native = false;
  // For an emulated platform: the handler's name, interpreter and flags.
  std::string handler;
  std::string interpreter;
  std::string flags;
  bool enabled = false;
  // Native, or an enabled handler with the F flag.
  bool usable() const {
    return native || (enabled && flags.find('F') != std::string::npos);
  }
};

// The platforms this machine runs natively (the host's first), then those
// a qemu handler in `binfmt_dir` serves (enabled or not) by platform.
std::vector<Runner> Runners(const std::string& binfmt_dir = kBinfmtDir);

// The platforms Runners() reports usable.
std::vector<Platform> UsablePlatforms(
    const std::string& binfmt_dir = kBinfmtDir);

// OK when a RUN for `p` can run here; FAILED_PRECONDITION otherwise,
// saying what is missing and how to enable it.
absl::Status CheckRunnable(const Platform& p,
                           const std::string& binfmt_dir = kBinfmtDir);

// The platforms a worker offers, split by how it runs them: `asked` (a
// comma-separated list; "" = every usable one here), each checked with
// CheckRunnable (its error for one that cannot run, INVALID_ARGUMENT for a
// bad list).
struct Offered {
  std::vector<Platform> native, emulated;
};
absl::StatusOr<Offered> Offer(absl::string_view asked,
                              const std::string& binfmt_dir = kBinfmtDir);

// Registers every qemu handler defined in `conf_dir` whose interpreter
// exists, with the F flag (replacing a registration without it); mounts
// binfmt_misc first when it is not. Needs root. Returns the platforms
// registered or already usable.
absl::StatusOr<std::vector<Platform>> Install(
    const std::string& binfmt_dir = kBinfmtDir,
    const std::string& conf_dir = kBinfmtConfDir);

// The platform a qemu handler name serves ("qemu-aarch64" -> linux/arm64);
// false for names that are not qemu's.
bool HandlerPlatform(const std::string& handler, Platform* out);

}  // namespace stagefarm::platform

#endif  // STAGEFARM_PLATFORM_EMULATION_H_
