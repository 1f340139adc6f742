// What a REAPI Command may ask for, checked before anything runs, and
// where its paths are inside the action's input root.
//
// The input root is bound at kExecRoot in the sandbox, over the image's
// root file system. A symlink in the input root whose target is absolute
// points into the sandbox's file system: at kExecRoot/... it is inside the
// input root, anywhere else (`etc -> /etc`) it is outside it, in the image,
// which outputs never reach. Output paths (relative to the working
// directory) are resolved inside the input root: through symlinks that
// stay inside, and an INVALID_ARGUMENT naming the symlink for one that
// leads out (REAPI: outputs are files of the input root). Thread-safe.
#ifndef STAGEFARM_REMOTEEXEC_COMMAND_RULES_H_
#define STAGEFARM_REMOTEEXEC_COMMAND_RULES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"

namespace stagefarm::remoteexec {

namespace reapi = ::build::bazel::remote::execution::v2;

// Where the input root is inside the sandbox.
inline constexpr char kExecRoot[] = "/stagefarm/exec";

// INVALID_ARGUMENT naming the field for: no arguments; a NUL byte in an
// argument, an environment variable's name or value (the kernel cannot
// pass one), or a path; an empty variable name or one with '='; a working
// directory or output path that is absolute or has empty, "." or ".."
// components. Pure.
absl::Status CheckCommand(const reapi::Command& command);

// The host path of `rel` (relative to the input root, already checked by
// CheckCommand) inside `root`, the input root on this host. Symlinks
// along the way are followed inside the root; the last component only if
// `follow_last`. Components that do not exist are kept as written.
// INVALID_ARGUMENT naming `what` (e.g. "output_paths \"etc/x\""), the
// symlink and its target when one leads out of the input root, or for a
// loop of symlinks.
absl::StatusOr<std::string> ResolveInInputRoot(const std::string& root,
                                               absl::string_view rel,
                                               bool follow_last,
                                               absl::string_view what);

}  // namespace stagefarm::remoteexec

#endif  // STAGEFARM_REMOTEEXEC_COMMAND_RULES_H_
