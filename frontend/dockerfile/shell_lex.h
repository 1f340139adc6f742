// ShellLex: the Dockerfile's variable expansion and word splitting, as
// BuildKit's shell lexer (frontend/dockerfile/shell) does it: $V, ${V},
// ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?msg} ${V?msg}, ${V#p} ${V##p} ${V%p}
// ${V%%p}, ${V/p/r} ${V//p/r}, single and double quotes, and the escape
// token. Pure; a ShellLex is immutable and thread-safe.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_SHELL_LEX_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_SHELL_LEX_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::dockerfile {

// Looks a variable up; nullopt if it is not set.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view)>;

// An EnvLookup over "KEY=VALUE" entries (the last entry of a key wins).
EnvLookup EnvFromList(const std::vector<std::string>* entries);

struct ShellLexOptions {
  char escape = '\\';
  // Keep quote characters in the result (quotes still group words).
  bool raw_quotes = false;
  // Keep escape tokens in the result.
  bool raw_escapes = false;
  // Leave references to unset variables as written.
  bool skip_unset = false;
  // Quotes are ordinary characters (heredoc bodies).
  bool skip_process_quotes = false;
};

class ShellLex {
 public:
  explicit ShellLex(ShellLexOptions options = {}) : options_(options) {}

  // Expands `word` as one word (quotes removed, no splitting).
  absl::StatusOr<std::string> ProcessWord(absl::string_view word,
                                          const EnvLookup& env) const;
  // Expands and splits into words on unquoted white space; white space that
  // comes from an unquoted expansion splits too.
  absl::StatusOr<std::vector<std::string>> ProcessWords(
      absl::string_view word, const EnvLookup& env) const;

  // Names of the variables `word` references (for "unused build arg"
  // reporting and cache keys).
  std::vector<std::string> ReferencedNames(absl::string_view word) const;

 private:
  ShellLexOptions options_;
};

// Shell pattern matching (*, ?, [...], [!...], escapes) of a whole string.
bool ShellPatternMatch(absl::string_view pattern, absl::string_view text);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_SHELL_LEX_H_
