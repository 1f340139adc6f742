// .dockerignore: reading the file and matching context paths, with Docker's
// semantics (moby/patternmatcher): comments, patterns cleaned like paths (a
// leading "/" is dropped), "*" and "?" within one path segment, "[...]"
// classes, "**" across segments, "\" escapes, and "!" exceptions applied in
// order, the last matching pattern deciding. A path is excluded when it or
// one of its parent directories matches. Pure; immutable after Create,
// thread-safe.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_DOCKERIGNORE_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_DOCKERIGNORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::dockerfile {

// The patterns of a .dockerignore file, cleaned ("!" kept as a prefix).
std::vector<std::string> ReadDockerignore(absl::string_view text);

// Docker's path cleaning (filepath.Clean with "/" separators).
std::string CleanPath(absl::string_view path);

class DockerignoreMatcher {
 public:
  // INVALID_ARGUMENT for a pattern that cannot match anything sensible (a
  // lone "!", an unterminated "[" class), naming the pattern.
  static absl::StatusOr<DockerignoreMatcher> Create(
      const std::vector<std::string>& patterns);

  // `path` is relative to the context root, "/" separated.
  bool Excluded(absl::string_view path) const;

  // Whether any exception pattern exists (a walker may then not skip
  // excluded directories wholesale).
  bool has_exceptions() const { return has_exceptions_; }

 private:
  struct Token {
    enum Kind { kLiteral, kStar, kQuestion, kAnyDirs, kAnyRest, kClass } kind;
    char literal = 0;
    std::string class_chars;  // for kClass: expanded set description
    bool negated = false;
  };
  struct Pattern {
    bool exclusion = false;
    std::vector<Token> tokens;
  };
  static absl::StatusOr<Pattern> Compile(absl::string_view pattern);
  // For each i, whether the tokens match path[0, i) exactly.
  static std::vector<char> MatchPrefixes(const std::vector<Token>& tokens,
                                         absl::string_view path);

  std::vector<Pattern> patterns_;
  bool has_exceptions_ = false;
};

// Which ignore file applies to a Dockerfile: "<dockerfile>.dockerignore"
// next to the Dockerfile takes precedence over the context's .dockerignore.
// Returns the paths to try, in order.
std::vector<std::string> IgnoreFileCandidates(absl::string_view dockerfile_path,
                                              absl::string_view context_dir);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_DOCKERIGNORE_H_
