// Lexical helpers of the Dockerfile parser, matching BuildKit's byte and
// rune rules (Go's unicode.IsSpace, strconv.Quote). Pure; thread-safe.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_TEXT_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_TEXT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "frontend/dockerfile/parser.h"

namespace stagefarm::dockerfile {

// ' ', \t, \n, \v, \f, \r.
inline bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}
// The parser's word separators: [ \t\v\f\r].
inline bool IsAsciiSpaceNoNewline(char c) {
  return c != '\n' && IsAsciiSpace(c);
}
// Go's unicode.IsSpace(rune(b)) for a single byte b (Latin-1 view).
inline bool IsByteSpace(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return IsAsciiSpace(c) || u == 0x85 || u == 0xA0;
}

// SpaceWidthAt for a byte >= 0x80 at s[pos].
size_t UnicodeSpaceWidthAt(absl::string_view s, size_t pos);
// Width of the Unicode white space (Go's unicode.IsSpace) encoded in UTF-8 at
// s[pos], or 0 if there is none.
inline size_t SpaceWidthAt(absl::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  unsigned char c = static_cast<unsigned char>(s[pos]);
  if (c < 0x80) return IsAsciiSpace(static_cast<char>(c)) ? 1 : 0;
  return UnicodeSpaceWidthAt(s, pos);
}
absl::string_view TrimLeftSpace(absl::string_view s);
absl::string_view TrimSpace(absl::string_view s);

// Reads leading "--flag" words (quotes and the escape token removed, a bare
// "--" ends them and is dropped) into `flags`; returns the rest unchanged.
absl::string_view ExtractFlags(absl::string_view line, char escape,
                               std::vector<std::string>* flags);

// Splits on white space outside quotes; quotes and escape tokens are kept
// (BuildKit's parseWords, used for ARG, ENV and LABEL).
std::vector<std::string> SplitWordsKeepingQuotes(absl::string_view rest,
                                                 char escape);

// The heredocs a RUN/COPY/ADD line opens (`<<EOF`, `<<-EOF`, `3<<EOF`,
// quoted names), in order.
std::vector<Heredoc> HeredocsFromLine(absl::string_view line);

// Go's strconv.Quote.
std::string GoQuote(absl::string_view s);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_TEXT_H_
