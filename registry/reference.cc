#include "registry/reference.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stagefarm::registry {
namespace {

bool IsHexDigest(absl::string_view d) {
  if (!absl::ConsumePrefix(&d, "sha256:") || d.size() != 64) return false;
  for (char c : d) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

// One path component: [a-z0-9]+ joined by ".", "_", "__" or "-"s.
bool IsComponent(absl::string_view c) {
  if (c.empty()) return false;
  if (!absl::ascii_isalnum(c.front()) || !absl::ascii_isalnum(c.back())) {
    return false;
  }
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (absl::ascii_isdigit(ch) || (ch >= 'a' && ch <= 'z')) continue;
    if (ch == '.' || ch == '_' || ch == '-') {
      // separators: "." and "_" alone, "__", or any run of "-"
      if (ch == '.' && !absl::ascii_isalnum(c[i + 1])) return false;
      if (ch == '_' && c[i + 1] == '_' && !absl::ascii_isalnum(c[i + 2])) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

bool IsTag(absl::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    bool word = absl::ascii_isalnum(c) || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

// host[:port]: letters, digits, '.' and '-' (or an [IPv6] address), and a
// numeric port.
bool IsHost(absl::string_view h) {
  absl::string_view port;
  if (absl::StartsWith(h, "[")) {
    size_t close = h.find(']');
    if (close == absl::string_view::npos || close == 1) return false;
    for (char c : h.substr(1, close - 1)) {
      if (!absl::ascii_isxdigit(c) && c != ':') return false;
    }
    port = h.substr(close + 1);
    if (!port.empty() && !absl::ConsumePrefix(&port, ":")) return false;
  } else {
    size_t colon = h.find(':');
    if (colon != absl::string_view::npos) {
      port = h.substr(colon + 1);
      if (port.empty()) return false;
      h = h.substr(0, colon);
    }
    if (h.empty()) return false;
    for (char c : h) {
      if (!absl::ascii_isalnum(c) && c != '.' && c != '-') return false;
    }
  }
  for (char c : port) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return port.size() <= 5;
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
    return absl::InvalidArgumentError(
        absl::StrCat("invalid image reference \"", text, "\": ", why));
  };
  if (text.empty()) return bad("empty");
  Reference ref;
  absl::string_view rest = text;
  size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    if (!IsHexDigest(ref.digest)) {
      return bad("the digest must be sha256: and 64 lower-case hex digits");
    }
    rest = rest.substr(0, at);
  }
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos &&
      (slash == absl::string_view::npos || colon > slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (!IsTag(ref.tag)) {
      return bad("a tag is up to 128 letters, digits, '_', '.' and '-'");
    }
    rest = rest.substr(0, colon);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  size_t first = 0;
  if (parts.size() > 1 &&
      (absl::StrContains(parts[0], '.') || absl::StrContains(parts[0], ':') ||
       parts[0] == "localhost")) {
    ref.registry = std::string(parts[0]);
    first = 1;
  } else {
    ref.registry = kDockerHub;
  }
  if (ref.registry == "index.docker.io" ||
      ref.registry == "registry-1.docker.io") {
    ref.registry = kDockerHub;
  }
  if (!IsHost(ref.registry)) {
    return bad(
        absl::StrCat("\"", ref.registry, "\" is not a registry host[:port]"));
  }
  for (size_t i = first; i < parts.size(); ++i) {
    if (!IsComponent(parts[i])) {
      return bad(absl::StrCat(
          "repository component \"", parts[i],
          "\" must be lower-case letters and digits joined by '.', '_' or "
          "'-'"));
    }
    if (!ref.repository.empty()) ref.repository += "/";
    absl::StrAppend(&ref.repository, parts[i]);
  }
  if (ref.repository.empty()) return bad("no repository");
  if (ref.registry == kDockerHub && first == parts.size() - 1 &&
      !absl::StrContains(ref.repository, '/')) {
    ref.repository = absl::StrCat("library/", ref.repository);
  }
  if (ref.repository.size() > 255) return bad("repository over 255 bytes");
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
