#include "executor/seccomp_profile.h"

#include <cerrno>

namespace stagefarm::executor {

const std::vector<std::string>& DeniedSyscalls() {
  static const std::vector<std::string>* const kNames =
      new std::vector<std::string>{
          "acct",
          "add_key",
          "bpf",
          "clock_adjtime",
          "clock_settime",
          "create_module",
          "delete_module",
          "finit_module",
          "fsconfig",
          "fsmount",
          "fsopen",
          "fspick",
          "get_kernel_syms",
          "get_mempolicy",
          "init_module",
          "ioperm",
          "iopl",
          "kcmp",
          "kexec_file_load",
          "kexec_load",
          "keyctl",
          "lookup_dcookie",
          "mbind",
          "mount",
          "move_mount",
          "move_pages",
          "name_to_handle_at",
          "nfsservctl",
          "open_by_handle_at",
          "open_tree",
          "perf_event_open",
          "pivot_root",
          "process_vm_readv",
          "process_vm_writev",
          "ptrace",
          "query_module",
          "quotactl",
          "reboot",
          "request_key",
          "set_mempolicy",
          "setns",
          "settimeofday",
          "stime",
          "swapoff",
          "swapon",
          "sysfs",
          "_sysctl",
          "umount",
          "umount2",
          "unshare",
          "uselib",
          "userfaultfd",
          "ustat",
          "vm86",
          "vm86old",
      };
  return *kNames;
}

nlohmann::json DefaultSeccompProfile() {
  nlohmann::json profile;
  profile["defaultAction"] = "SCMP_ACT_ALLOW";
  profile["architectures"] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                              "SCMP_ARCH_X32"};
  nlohmann::json rule;
  rule["names"] = DeniedSyscalls();
  rule["action"] = "SCMP_ACT_ERRNO";
  rule["errnoRet"] = EPERM;
  profile["syscalls"] = nlohmann::json::array({rule});
  return profile;
}

}  // namespace stagefarm::executor
