// Whether this process runs in a user namespace other than the machine's:
// root there is not the machine's root (the rootless engine,
// executor/rootless.h), which changes how overlayfs keeps its metadata
// (archives/layer_tar.h) and what a container may be given
// (executor/runc_executor.h).
#ifndef STAGEFARM_COMMON_USER_NAMESPACE_H_
#define STAGEFARM_COMMON_USER_NAMESPACE_H_

namespace stagefarm {

// True when /proc/self/uid_map is not the identity over every id. Read
// once; thread-safe.
bool InUserNamespace();

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_USER_NAMESPACE_H_
