#include "gitsource/git_source.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace stagefarm::gitsource {
namespace {

bool IsCommitHash(absl::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The environment git runs in: no prompts, no configuration but ours.
std::vector<std::string> GitEnv(const std::string& home) {
  return {"GIT_TERMINAL_PROMPT=0",
          "GIT_CONFIG_NOSYSTEM=1",
          "GIT_CONFIG_GLOBAL=/dev/null",
          "HOME=" + home,
          "GIT_SSH_COMMAND=ssh -o BatchMode=yes",
          "LC_ALL=C"};
}

// Options in front of every command: only network transports.
std::vector<std::string> GitArgs(std::vector<std::string> args) {
  std::vector<std::string> all = {
      "-c", "protocol.allow=never",       "-c", "protocol.https.allow=always",
      "-c", "protocol.http.allow=always", "-c", "protocol.git.allow=always",
      "-c", "protocol.ssh.allow=always",  "-c", "advice.detachedHead=false"};
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

absl::StatusOr<std::string> Git(const std::vector<std::string>& args,
                                const std::string& home,
                                absl::string_view what) {
  ASSIGN_OR_RETURN(std::string git, FindProgram("git"));
  ASSIGN_OR_RETURN(CommandResult r,
                   RunCommand(git, GitArgs(args), "", GitEnv(home)));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", absl::StripTrailingAsciiWhitespace(r.output)));
  }
  return r.output;
}

}  // namespace

std::string GitRef::Redacted() const {
  size_t scheme = remote.find("://");
  if (scheme == std::string::npos) return remote;
  size_t host = scheme + 3;
  size_t at = remote.find('@', host);
  size_t slash = remote.find('/', host);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) {
    return remote;
  }
  return remote.substr(0, host) + remote.substr(at + 1);
}

std::optional<GitRef> ParseGitRef(absl::string_view source) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(source, absl::MaxSplits('#', 1));
  absl::string_view base = parts.first;
  bool git = absl::StartsWith(base, "git://") ||
             absl::StartsWith(base, "ssh://") ||
             (absl::StartsWith(base, "git@") &&
              base.find(':') != absl::string_view::npos);
  if (absl::StartsWith(base, "http://") || absl::StartsWith(base, "https://")) {
    absl::string_view path = base.substr(0, base.find('?'));
    absl::ConsumeSuffix(&path, "/");
    git = absl::EndsWith(path, ".git");
  }
  if (!git) return std::nullopt;
  GitRef ref;
  ref.remote = std::string(base);
  std::pair<absl::string_view, absl::string_view> frag =
      absl::StrSplit(parts.second, absl::MaxSplits(':', 1));
  ref.ref = std::string(frag.first);
  ref.subdir = std::string(frag.second);
  return ref;
}

absl::StatusOr<std::string> ResolveCommit(const GitRef& ref) {
  if (IsCommitHash(ref.ref)) return absl::AsciiStrToLower(ref.ref);
  const std::string name = ref.ref.empty() ? "HEAD" : ref.ref;
  ASSIGN_OR_RETURN(
      std::string listing,
      // The peeled line of an annotated tag is listed only when asked.
      Git({"ls-remote", "--", ref.remote, name, name + "^{}"}, "/nonexistent",
          absl::StrCat("git ls-remote ", ref.Redacted())));
  // Best match first: the ref as written, a branch, a peeled tag, a tag.
  const std::vector<std::string> wanted = {name, "refs/heads/" + name,
                                           "refs/tags/" + name + "^{}",
                                           "refs/tags/" + name};
  std::vector<std::string> found(wanted.size());
  for (absl::string_view line : absl::StrSplit(listing, '\n')) {
    std::pair<absl::string_view, absl::string_view> f =
        absl::StrSplit(line, absl::MaxSplits('\t', 1));
    if (!IsCommitHash(f.first)) continue;
    for (size_t i = 0; i < wanted.size(); ++i) {
      if (f.second == wanted[i]) found[i] = std::string(f.first);
    }
  }
  for (const std::string& commit : found) {
    if (!commit.empty()) return commit;
  }
  return absl::NotFoundError(
      absl::StrCat("git ref \"", name, "\" not found in ", ref.Redacted()));
}

absl::Status Checkout(const GitRef& ref, const std::string& commit,
                      bool keep_git_dir, const std::string& work,
                      const std::string& dest) {
  const std::string repo = work + "/repo";
  RETURN_IF_ERROR(MakeDirs(repo, 0755));
  const std::string what = absl::StrCat("git fetch ", ref.Redacted());
  RETURN_IF_ERROR(Git({"init", "-q", repo}, work, "git init").status());
  // A shallow fetch of the commit itself; dumb HTTP servers and servers
  // that refuse unadvertised commits get the ref fetched whole instead.
  absl::Status shallow =
      Git({"-C", repo, "fetch", "-q", "--depth", "1", "--", ref.remote, commit},
          work, what)
          .status();
  if (!shallow.ok()) {
    std::vector<std::string> args = {"-C", repo, "fetch",
                                     "-q", "--", ref.remote};
    if (ref.ref.empty() || IsCommitHash(ref.ref)) {
      args.push_back("+refs/heads/*:refs/remotes/origin/*");
      args.push_back("+refs/tags/*:refs/tags/*");
    } else {
      args.push_back(ref.ref);
    }
    RETURN_IF_ERROR(Git(args, work, what).status());
  }
  RETURN_IF_ERROR(
      Git({"-C", repo, "checkout", "-q", "--detach", commit}, work,
          absl::StrCat("git checkout ", commit, " of ", ref.Redacted()))
          .status());
  ASSIGN_OR_RETURN(std::string head,
                   Git({"-C", repo, "rev-parse", "HEAD"}, work, "git"));
  if (absl::StripAsciiWhitespace(head) != commit) {
    return absl::FailedPreconditionError(
        absl::StrCat("git checkout of ", ref.Redacted(), " gave ",
                     absl::StripAsciiWhitespace(head), ", not ", commit));
  }
  if (!keep_git_dir) RETURN_IF_ERROR(RemoveAll(repo + "/.git"));
  std::string from = repo;
  if (!ref.subdir.empty()) {
    ASSIGN_OR_RETURN(from, ResolveInRoot(repo, ref.subdir, true));
    struct stat st;
    if (stat(from.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::NotFoundError(absl::StrCat("no directory \"", ref.subdir,
                                              "\" in ", ref.Redacted(), " at ",
                                              commit));
    }
  }
  if (rename(from.c_str(), dest.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("moving the checkout to ", dest, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace stagefarm::gitsource
