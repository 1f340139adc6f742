#include "cli/vcs.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace stagefarm::cli {

namespace {

bool Read(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsHex40(absl::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

// The git directory for `dir` or a directory above it, and the common
// directory (a worktree's refs and config live there), or false.
bool FindGitDir(std::string dir, std::string* git_dir,
                std::string* common_dir) {
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) return false;
  dir = real;
  free(real);
  while (true) {
    std::string dot = dir + "/.git";
    std::string text;
    if (IsDir(dot)) {
      *git_dir = *common_dir = dot;
      return true;
    }
    if (Read(dot, &text)) {  // a worktree or submodule: "gitdir: PATH"
      absl::string_view v = absl::StripAsciiWhitespace(text);
      if (!absl::ConsumePrefix(&v, "gitdir:")) return false;
      std::string path(absl::StripAsciiWhitespace(v));
      if (!absl::StartsWith(path, "/")) path = dir + "/" + path;
      *git_dir = *common_dir = path;
      std::string common;
      if (Read(path + "/commondir", &common)) {
        std::string c(absl::StripAsciiWhitespace(common));
        *common_dir = absl::StartsWith(c, "/") ? c : path + "/" + c;
      }
      return true;
    }
    if (dir == "/" || dir.empty()) return false;
    size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
}

std::string ResolveRef(const std::string& git_dir,
                       const std::string& common_dir, const std::string& ref) {
  std::string text;
  for (const std::string& d : {git_dir, common_dir}) {
    if (Read(d + "/" + ref, &text)) {
      std::string v(absl::StripAsciiWhitespace(text));
      if (IsHex40(v)) return absl::AsciiStrToLower(v);
    }
  }
  if (Read(common_dir + "/packed-refs", &text)) {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(line, absl::MaxSplits(' ', 1));
      if (absl::StripAsciiWhitespace(kv.second) == ref && IsHex40(kv.first)) {
        return absl::AsciiStrToLower(kv.first);
      }
    }
  }
  return "";
}

// url = ... of [remote "origin"] in a git config.
std::string OriginUrl(const std::string& config) {
  bool in_origin = false;
  for (absl::string_view line : absl::StrSplit(config, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(line, "[")) {
      in_origin = line == "[remote \"origin\"]";
      continue;
    }
    if (!in_origin) continue;
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (absl::StripAsciiWhitespace(kv.first) == "url") {
      return std::string(absl::StripAsciiWhitespace(kv.second));
    }
  }
  return "";
}

}  // namespace

std::string StripCredentials(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t host = scheme + 3;
  size_t end = url.find('/', host);
  size_t at = url.rfind('@', end == std::string::npos ? url.size() : end);
  if (at == std::string::npos || at < host) return url;
  return url.substr(0, host) + url.substr(at + 1);
}

VcsInfo ReadVcsInfo(const std::string& context_dir) {
  VcsInfo info;
  std::string git_dir, common_dir, text;
  if (!FindGitDir(context_dir, &git_dir, &common_dir)) return info;
  if (Read(common_dir + "/config", &text)) {
    info.source = StripCredentials(OriginUrl(text));
  }
  if (Read(git_dir + "/HEAD", &text)) {
    absl::string_view head = absl::StripAsciiWhitespace(text);
    if (absl::ConsumePrefix(&head, "ref:")) {
      info.revision = ResolveRef(git_dir, common_dir,
                                 std::string(absl::StripAsciiWhitespace(head)));
    } else if (IsHex40(head)) {
      info.revision = absl::AsciiStrToLower(head);  // a detached HEAD
    }
  }
  return info;
}

}  // namespace stagefarm::cli
