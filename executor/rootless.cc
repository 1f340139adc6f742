#include "executor/rootless.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/subprocess.h"

namespace stagefarm::executor {

absl::StatusOr<std::string> SubordinateRange(const std::string& file,
                                             const std::string& name,
                                             unsigned id) {
  std::ifstream in(file);
  std::string line;
  const std::string id_text = std::to_string(id);
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ':');
    if (f.size() != 3 || (f[0] != name && f[0] != id_text)) continue;
    uint64_t start = 0, n = 0;
    if (!absl::SimpleAtoi(f[1], &start) || !absl::SimpleAtoi(f[2], &n) ||
        n == 0) {
      continue;
    }
    return absl::StrCat(start, ":", n);
  }
  return absl::NotFoundError(
      absl::StrCat(file, " gives no subordinate ids to ", name));
}

absl::Status EnterUserNamespace(char** argv) {
  if (geteuid() == 0 || InUserNamespace()) return absl::OkStatus();
  std::string name = std::to_string(geteuid());
  if (struct passwd* pw = getpwuid(geteuid()); pw != nullptr) {
    name = pw->pw_name;
  }
  for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
    if (!SubordinateRange(file, name, geteuid()).ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("running without root needs subordinate ids, and ", file,
                       " gives none to ", name,
                       " (as root: usermod --add-subuids 100000-165535 "
                       "--add-subgids 100000-165535 ",
                       name, ")"));
    }
  }
  for (const char* tool : {"newuidmap", "newgidmap"}) {
    auto found = FindProgram(tool, "uidmap");
    if (!found.ok()) return found.status();
  }
  auto unshare = FindProgram("unshare", "util-linux");
  if (!unshare.ok()) return unshare.status();
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    return absl::InternalError(absl::StrCat(
        "cannot find this program (/proc/self/exe): ", strerror(errno)));
  }
  self[n] = '\0';
  // The user is root inside, its subordinate ids 1 and up: files a step
  // gives to root are the user's own outside, so the user can read and
  // remove what the engine keeps.
  std::vector<std::string> args = {"unshare",    "--user",  "--map-root-user",
                                   "--map-auto", "--mount", "--propagation",
                                   "private",    "--",      self};
  for (char** a = argv + 1; *a != nullptr; ++a) args.emplace_back(*a);
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  execv(unshare->c_str(), cargs.data());
  return absl::InternalError(
      absl::StrCat("cannot start ", *unshare, ": ", strerror(errno)));
}

}  // namespace stagefarm::executor
