// COPY and ADD between directory trees with Docker's semantics: sources
// matched by glob inside a source root (the build context or another
// stage's file system), symlinks among the matched sources followed inside
// that root, a directory source copying its contents, trailing-slash and
// existing-directory destinations, --chown/--chmod, created parents owned by
// root (or by the --chown owner), and local tar archives unpacked by ADD.
// Nothing is read outside the source root or written outside the
// destination root. Thread-safe (no shared state).
#ifndef STAGEFARM_ENGINE_COPY_H_
#define STAGEFARM_ENGINE_COPY_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/dockerignore.h"

namespace stagefarm::engine {

struct CopySource {
  std::string root;  // host directory
  // Context only: paths it excludes do not exist for COPY.
  const dockerfile::DockerignoreMatcher* ignore = nullptr;
  // Files from the context are owned by root in the image; files from a
  // stage or image keep their owners.
  bool keep_owners = false;
};

struct SourceMatch {
  std::string rel;   // path inside the source root, "/"-separated, no slash
  std::string host;  // resolved host path
  bool is_dir = false;
  // With --parents: the part of `rel` kept under the destination (all of
  // it, or what follows a "/./" pivot in the pattern).
  std::string keep;
  // `rel` with symlinks resolved: what .dockerignore and --exclude judge.
  std::string real_rel;
};

// The entries `patterns` select (in pattern order, glob matches sorted).
// NOT_FOUND naming the pattern when a plain path is missing, or when
// nothing matches at all.
absl::StatusOr<std::vector<SourceMatch>> MatchSources(
    const CopySource& source, const std::vector<std::string>& patterns,
    const std::vector<std::string>& excludes);

// A digest ("sha256:<hex>") over the selected entries' names, types, modes,
// (owners when kept), sizes, contents and link targets, recursively. Never
// over mtimes or host paths.
absl::StatusOr<std::string> DigestSources(
    const CopySource& source, const std::vector<SourceMatch>& matches,
    const std::vector<std::string>& excludes);

// A --chmod value: an octal mode, or chmod(1) symbolic clauses such as
// "u+rw,g+r,o-x", "go-w", "a+X" applied to each file's own mode.
class FileMode {
 public:
  FileMode(mode_t octal) : octal_(octal) {}  // NOLINT: octal is the common case
  static absl::StatusOr<FileMode> Parse(const std::string& text);
  mode_t Apply(mode_t current, bool is_dir) const;

 private:
  struct Clause {
    mode_t who;  // bits the clause may touch
    char op;     // + - =
    std::string perms;
  };
  FileMode() = default;
  std::optional<mode_t> octal_;
  std::vector<Clause> clauses_;
};

struct CopyOptions {
  std::string dest;  // absolute in the destination root; a trailing "/" kept
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<FileMode> mode;  // --chmod
  bool unpack_archives = false;  // ADD of local archives
  bool parents = false;          // --parents: keep each source's path
};

absl::Status CopyInto(const CopySource& source,
                      const std::vector<SourceMatch>& matches,
                      const std::vector<std::string>& excludes,
                      const std::string& dest_root, const CopyOptions& options);

// Parses --chmod: octal 0..07777. INVALID_ARGUMENT in BuildKit's words.
absl::StatusOr<mode_t> ParseChmod(const std::string& text);

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_COPY_H_
