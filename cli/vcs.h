// The source of a build context, as buildx records it (vcs:source,
// vcs:revision): the git repository the context directory is in, read
// from its .git files (no git program needed): the origin remote's URL
// without credentials, and the commit HEAD names. Empty when the context
// is not in a git work tree or the files say nothing.
#ifndef STAGEFARM_CLI_VCS_H_
#define STAGEFARM_CLI_VCS_H_

#include <string>

namespace stagefarm::cli {

struct VcsInfo {
  std::string source;    // "https://github.com/org/repo.git"
  std::string revision;  // 40 hex digits
};

VcsInfo ReadVcsInfo(const std::string& context_dir);

// `url` without a user or password ("https://u:p@host/x" ->
// "https://host/x"); scp-like "git@host:x" stays as it is.
std::string StripCredentials(const std::string& url);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_VCS_H_
