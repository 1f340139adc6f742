// The seccomp profile every build step runs under.
//
// This is a deny list, not Docker's profile: Docker's default profile
// (moby/profiles/seccomp/default.json) is an allow list with defaultAction
// SCMP_ACT_ERRNO. DefaultSeccompProfile() instead allows everything and
// refuses, with EPERM, the syscalls that Docker's allow list refuses to a
// container without extra capabilities (kernel modules, kexec, keyrings,
// mount and namespace changes, ptrace and cross-process memory access, clock
// changes, BPF and perf, NUMA policy, quotas, swap, reboot, ...). The effect
// for an unprivileged build step is close to Docker's; syscalls Docker
// filters by argument (clone with namespace flags, personality values,
// socket families) are not filtered here beyond what the dropped
// capabilities already prevent. `personality` is allowed.
#ifndef STAGEFARM_EXECUTOR_SECCOMP_PROFILE_H_
#define STAGEFARM_EXECUTOR_SECCOMP_PROFILE_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace stagefarm::executor {

// The refused syscall names. Some exist only on 32-bit x86 (stime, vm86,
// umount, ...); runc (libseccomp) skips names that do not exist on an
// architecture, which was checked with runc 1.1.5.
const std::vector<std::string>& DeniedSyscalls();

// The OCI `linux.seccomp` object: defaultAction SCMP_ACT_ALLOW,
// architectures x86-64, x86 and x32, and one rule returning EPERM for
// DeniedSyscalls().
nlohmann::json DefaultSeccompProfile();

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_SECCOMP_PROFILE_H_
