// ADD of a git repository: which sources name one (BuildKit's rules), the
// commit a ref stands for, and a checkout of it. Runs Debian's `git`
// without the caller's or the system's git configuration, without
// prompts, over http(s), git and ssh only.
#ifndef STAGEFARM_GITSOURCE_GIT_SOURCE_H_
#define STAGEFARM_GITSOURCE_GIT_SOURCE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::gitsource {

// `REMOTE#REF:SUBDIR`, as BuildKit reads ADD sources.
struct GitRef {
  std::string remote;  // as written, without the fragment
  std::string ref;     // "" = the remote's HEAD
  std::string subdir;  // "" = the whole tree
  // The remote without user and password, for keys, logs and history.
  std::string Redacted() const;
};

// A git source: `git://`, `ssh://` or scp-like `git@host:path` remotes, or
// http(s) URLs whose path ends in `.git`; nullopt for anything else (a
// plain URL, a local path).
std::optional<GitRef> ParseGitRef(absl::string_view source);

// The commit `ref` names at the remote (`git ls-remote`; a branch before a
// tag, an annotated tag peeled to its commit); a 40-digit hex ref is taken
// as the commit itself. NOT_FOUND naming the ref; FAILED_PRECONDITION with
// git's message when the remote cannot be read.
absl::StatusOr<std::string> ResolveCommit(const GitRef& ref);

// Checks out `commit` of `ref.remote` and leaves its tree (or `subdir` of
// it) at `dest` (which must not exist), with `.git` only when
// `keep_git_dir`. `work` is a scratch directory for the clone. A shallow
// fetch of the commit first; the whole ref when the server refuses.
absl::Status Checkout(const GitRef& ref, const std::string& commit,
                      bool keep_git_dir, const std::string& work,
                      const std::string& dest);

}  // namespace stagefarm::gitsource

#endif  // STAGEFARM_GITSOURCE_GIT_SOURCE_H_
