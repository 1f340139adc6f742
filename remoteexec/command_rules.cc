#include "remoteexec/command_rules.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"

namespace stagefarm::remoteexec {
namespace {

// `text` quoted for a message: printable, bounded.
std::string Quote(absl::string_view text) {
  absl::string_view shown = text.substr(0, 200);
  return absl::StrCat("\"", absl::CHexEscape(shown),
                      shown.size() < text.size() ? "..." : "", "\"");
}

// A path the Command names (working directory, outputs): relative, no
// "." or ".." components, no empty ones; "" only where `empty_ok`.
absl::Status CheckRelative(absl::string_view path, absl::string_view field,
                           bool empty_ok) {
  if (path.empty()) {
    return empty_ok ? absl::OkStatus()
                    : absl::InvalidArgumentError(
                          absl::StrCat("Command.", field, ": empty path"));
  }
  if (absl::StrContains(path, '\0')) {
    return absl::InvalidArgumentError(
        absl::StrCat("Command.", field, ": ", Quote(path), " has a NUL byte"));
  }
  if (path.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("Command.", field, ": ", Quote(path),
                     " is absolute; it must be relative"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("Command.", field, ": ", Quote(path),
                       " has an empty, \".\" or \"..\" component"));
    }
  }
  return absl::OkStatus();
}

void PushParts(absl::string_view path, std::deque<std::string>* todo) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(path, '/')) {
    if (!p.empty() && p != ".") parts.emplace_back(p);
  }
  todo->insert(todo->begin(), parts.begin(), parts.end());
}

}  // namespace

absl::Status CheckCommand(const reapi::Command& c) {
  if (c.arguments().empty()) {
    return absl::InvalidArgumentError("Command.arguments: empty");
  }
  for (int i = 0; i < c.arguments_size(); ++i) {
    if (absl::StrContains(c.arguments(i), '\0')) {
      return absl::InvalidArgumentError(
          absl::StrCat("Command.arguments[", i, "]: ", Quote(c.arguments(i)),
                       " has a NUL byte, which no process can be given"));
    }
  }
  for (int i = 0; i < c.environment_variables_size(); ++i) {
    const auto& v = c.environment_variables(i);
    const std::string field =
        absl::StrCat("Command.environment_variables[", i, "]");
    if (v.name().empty() || absl::StrContains(v.name(), '=')) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": bad name ", Quote(v.name()), " (empty, or with '=')"));
    }
    if (absl::StrContains(v.name(), '\0')) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": the name ", Quote(v.name()),
                       " has a NUL byte, which no environment can hold"));
    }
    if (absl::StrContains(v.value(), '\0')) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": the value of ", Quote(v.name()),
                       " has a NUL byte, which no environment can hold"));
    }
  }
  if (absl::Status s =
          CheckRelative(c.working_directory(), "working_directory", true);
      !s.ok()) {
    return s;
  }
  for (const auto& [list, field] :
       {std::pair{&c.output_paths(), "output_paths"},
        std::pair{&c.output_files(), "output_files"},
        std::pair{&c.output_directories(), "output_directories"}}) {
    for (const std::string& out : *list) {
      if (absl::Status s = CheckRelative(out, field, false); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveInInputRoot(const std::string& root,
                                               absl::string_view rel,
                                               bool follow_last,
                                               absl::string_view what) {
  std::deque<std::string> todo;
  PushParts(rel, &todo);
  std::vector<std::string> done;  // components below the root
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part == "..") {
      // Only a symlink's target brings "..": CheckCommand refuses them in
      // the Command's own paths.
      if (done.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": a symlink on the way leads above the input root"));
      }
      done.pop_back();
      continue;
    }
    done.push_back(part);
    if (todo.empty() && !follow_last) break;
    std::string inside = absl::StrJoin(done, "/");
    std::string host = absl::StrCat(root, "/", inside);
    struct stat st;
    if (lstat(host.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return ErrnoStatus(errno, "cannot stat", host);
    }
    if (!S_ISLNK(st.st_mode)) continue;
    if (++links > 40) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a loop of symlinks in the input root (at ",
                       Quote(inside), ")"));
    }
    std::vector<char> buf(static_cast<size_t>(st.st_size) + 2);
    ssize_t n = readlink(host.c_str(), buf.data(), buf.size() - 1);
    if (n < 0) return ErrnoStatus(errno, "cannot read link", host);
    std::string target(buf.data(), static_cast<size_t>(n));
    done.pop_back();
    if (!target.empty() && target[0] == '/') {
      // An absolute target is a path in the sandbox: inside the input root
      // only below kExecRoot.
      absl::string_view t = target;
      if (!absl::ConsumePrefix(&t, kExecRoot) || !(t.empty() || t[0] == '/')) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": the symlink ", Quote(inside), " -> ", Quote(target),
            " leads out of the input root (outputs are files of the input "
            "root; an absolute target is inside it only below ",
            kExecRoot, ")"));
      }
      done.clear();
      PushParts(t, &todo);
      continue;
    }
    // A relative target, from the link's directory: its ".." may not
    // climb above the root.
    std::deque<std::string> more;
    PushParts(target, &more);
    size_t depth = done.size();
    for (const std::string& p : more) {
      if (p != "..") {
        ++depth;
      } else if (depth-- == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": the symlink ", Quote(inside), " -> ", Quote(target),
            " leads out of the input root (outputs are files of the input "
            "root)"));
      }
    }
    todo.insert(todo.begin(), more.begin(), more.end());
  }
  if (done.empty()) return root;
  return absl::StrCat(root, "/", absl::StrJoin(done, "/"));
}

}  // namespace stagefarm::remoteexec
