// The Dockerfile parser: text in, a list of instruction nodes out.
//
// It follows BuildKit's frontend parser (frontend/dockerfile/parser): parser
// directives (syntax, escape, check), line continuations that may run over
// comment and blank lines, comments, heredoc bodies for RUN/COPY/ADD, the
// per-instruction argument rules (JSON or shell form, whitespace lists,
// key/value pairs), builder flags, and 1-based line spans. It does no variable
// expansion and does not validate instructions: unknown keywords and bad flags
// are reported by the instruction layer above, which has the spans to say
// file:line:column. Pure: no I/O. Thread-compatible.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_PARSER_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_PARSER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::dockerfile {

struct Heredoc {
  std::string name;     // the terminator word, quotes removed
  std::string content;  // body lines, each with its "\n"
  bool expand = true;   // false when any part of the name was quoted
  bool chomp = false;   // <<- (leading tabs already stripped from content)
  int fd = -1;          // 3<<EOF gives 3
};

struct Node {
  std::string keyword;             // as written in the file
  std::vector<std::string> flags;  // "--name=value", quotes removed
  std::vector<std::string> args;
  // ONBUILD: the instruction it wraps (args is then empty).
  std::unique_ptr<Node> inner;
  // An unknown keyword: BuildKit keeps one empty argument.
  bool ignored_args = false;
  bool json = false;     // args came from a JSON array
  std::string original;  // the logical line, continuations joined
  int start_line = 0;    // 1-based
  int end_line = 0;
  std::vector<Heredoc> heredocs;
  // The comment lines right above the instruction (no blank line between),
  // without "#" and one following space.
  std::vector<std::string> comments;

  std::string LowerKeyword() const;
};

struct Directives {
  std::string syntax;
  std::string check;
  char escape = '\\';
  bool escape_set = false;
};

struct Warning {
  int line = 0;
  std::string message;
};

struct ParsedDockerfile {
  Directives directives;
  std::vector<Node> children;
  std::vector<Warning> warnings;
  int start_line = 0;
  int end_line = 0;
};

// Errors are INVALID_ARGUMENT with "FILE:LINE: message" (a column where one
// is known: "FILE:LINE:COL: message").
absl::StatusOr<ParsedDockerfile> Parse(
    absl::string_view text, absl::string_view filename = "Dockerfile");

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_PARSER_H_
