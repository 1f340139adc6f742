#include "registry/reference.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stagefarm::registry {
namespace {

constexpr size_t kNameTotalLengthMax = 255;
constexpr size_t kTagLengthMax = 128;

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsWord(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*. Taking each
// separator greedily accepts the same strings as the regular expression:
// every separator must be followed by a letter or digit.
bool IsPathComponent(absl::string_view c) {
  size_t i = 0;
  auto alnum_run = [&] {
    size_t start = i;
    while (i < c.size() && IsLowerAlnum(c[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < c.size()) {
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

// [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainLabel(absl::string_view l) {
  if (l.empty() || !absl::ascii_isalnum(l.front()) ||
      !absl::ascii_isalnum(l.back())) {
    return false;
  }
  for (char c : l) {
    if (!absl::ascii_isalnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// host [":" port], host: labels joined by '.' or "[" hex digits and ':' "]".
bool IsDomain(absl::string_view d) {
  absl::string_view host = d;
  absl::string_view rest;
  if (absl::StartsWith(d, "[")) {
    size_t close = d.find(']');
    if (close == absl::string_view::npos || close == 1) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!absl::ascii_isxdigit(c) && c != ':') return false;
    }
    rest = d.substr(close + 1);
    return rest.empty() || (absl::ConsumePrefix(&rest, ":") && IsDigits(rest));
  }
  if (size_t colon = d.find(':'); colon != absl::string_view::npos) {
    host = d.substr(0, colon);
    if (!IsDigits(d.substr(colon + 1))) return false;
  }
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (!IsDomainLabel(label)) return false;
  }
  return true;
}

// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool IsTag(absl::string_view t) {
  if (t.empty() || t.size() > kTagLengthMax || !IsWord(t[0])) return false;
  for (char c : t) {
    if (!IsWord(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*
bool IsDigestAlgorithm(absl::string_view a) {
  bool need_letter = true;
  for (char c : a) {
    if (need_letter) {
      if (!absl::ascii_isalpha(c)) return false;
      need_letter = false;
    } else if (c == '-' || c == '_' || c == '+' || c == '.') {
      need_letter = true;
    } else if (!absl::ascii_isalnum(c)) {
      return false;
    }
  }
  return !need_letter;
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

// Docker's splitDockerDomain: the first component is a domain when it
// looks like one, or has an upper-case letter (no path component may).
void SplitDomain(absl::string_view text, std::string* domain,
                 std::string* remainder) {
  size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    *domain = kDockerHub;
    *remainder = absl::StrCat("library/", text);
    return;
  }
  absl::string_view first = text.substr(0, slash);
  absl::string_view rest = text.substr(slash + 1);
  if (first == "localhost" || absl::StrContains(first, '.') ||
      absl::StrContains(first, ':') || absl::AsciiStrToLower(first) != first) {
    *domain = std::string(first);
    *remainder = std::string(rest);
  } else {
    *domain = kDockerHub;
    *remainder = std::string(text);
  }
  if (*domain == "index.docker.io" || *domain == "registry-1.docker.io") {
    *domain = kDockerHub;
  }
  if (*domain == kDockerHub && !absl::StrContains(*remainder, '/')) {
    *remainder = absl::StrCat("library/", *remainder);
  }
}

}  // namespace

std::string Reference::String() const {
  std::string out = absl::StrCat(registry, "/", repository);
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    // Escaped, and bounded: the text may be any bytes, of any length.
    absl::string_view shown = text.substr(0, 512);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid image reference \"", absl::CHexEscape(shown),
                     shown.size() < text.size() ? "..." : "", "\": ", why));
  };
  constexpr char kFormat[] = "invalid reference format";
  if (text.empty()) {
    return bad(absl::StrCat(kFormat,
                            ": repository name must have at least one "
                            "component"));
  }
  if (text.size() == 64 && IsLowerHex(text)) {
    return bad(
        "invalid repository name, cannot specify 64-byte hexadecimal strings");
  }
  Reference ref;
  std::string remainder;
  SplitDomain(text, &ref.registry, &remainder);
  // Docker checks the case of the path (up to any ':') before the rest.
  absl::string_view remote =
      absl::string_view(remainder).substr(0, remainder.find(':'));
  if (absl::AsciiStrToLower(remote) != remote) {
    return bad(absl::StrCat(kFormat, ": repository name must be lowercase"));
  }

  absl::string_view rest = remainder;
  if (size_t at = rest.find('@'); at != absl::string_view::npos) {
    absl::string_view digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    size_t colon = digest.find(':');
    if (colon == absl::string_view::npos) return bad(kFormat);
    absl::string_view algorithm = digest.substr(0, colon);
    absl::string_view hex = digest.substr(colon + 1);
    if (!IsDigestAlgorithm(algorithm) || hex.size() < 32) return bad(kFormat);
    for (char c : hex) {
      if (!absl::ascii_isxdigit(c)) return bad(kFormat);
    }
    if (algorithm != "sha256") {
      return bad("unsupported digest algorithm (only sha256 is)");
    }
    if (hex.size() != 64) return bad("invalid checksum digest length");
    if (!IsLowerHex(hex)) return bad("invalid checksum digest format");
    ref.digest = std::string(digest);
  }
  absl::string_view path = rest;
  if (size_t colon = rest.find(':'); colon != absl::string_view::npos) {
    path = rest.substr(0, colon);
    ref.tag = std::string(rest.substr(colon + 1));
    if (!IsTag(ref.tag)) return bad(kFormat);
  }
  if (!IsDomain(ref.registry)) return bad(kFormat);
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (!IsPathComponent(component)) return bad(kFormat);
  }
  ref.repository = std::string(path);
  if (ref.registry.size() + 1 + ref.repository.size() > kNameTotalLengthMax) {
    return bad(absl::StrCat(kFormat,
                            ": repository name must not be more than 255 "
                            "characters"));
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

bool IsLoopbackHost(absl::string_view host) {
  absl::string_view h = host;
  if (absl::ConsumePrefix(&h, "[")) {
    h = h.substr(0, h.find(']'));
    return h == "::1";
  }
  h = h.substr(0, h.find(':'));
  return h == "localhost" || absl::StartsWith(h, "127.");
}

}  // namespace stagefarm::registry
