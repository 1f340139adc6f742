// Whether the kernel killed a step's processes because the step used more
// memory than its limit, and how a failed step's exit then reads.
//
// runc removes a container's cgroups when it exits, and with them the
// counters; a container run with `runc run --keep` keeps them until
// `runc delete`, and its state.json names the directories. A cgroup v2
// directory counts kills in memory.events ("oom_kill N"), a v1 memory
// controller in memory.oom_control (Linux 4.13+; before that, failcnt is
// the only trace). Thread-safe (no shared state).
#ifndef STAGEFARM_EXECUTOR_MEMORY_KILL_H_
#define STAGEFARM_EXECUTOR_MEMORY_KILL_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "executor/executor.h"

namespace stagefarm::executor {

// The "oom_kill N" count of a memory.events or memory.oom_control text;
// -1 when the text has none.
int64_t OomKillCount(absl::string_view counters);

// Whether the cgroups runc's `state_json` names counted a kill for memory.
// `exit_code` 137 with a v1 failcnt above 0 counts when the kernel has no
// oom_kill counter. Unreadable files count as no kill.
bool KilledForMemory(absl::string_view state_json, int exit_code);

// A failed process's exit for an error message: "exit code: 2", or
// "exit code: 137: killed by the kernel: out of memory (the step's memory
// limit is 256 MiB)".
std::string DescribeExit(const ExecResult& result);

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_MEMORY_KILL_H_
