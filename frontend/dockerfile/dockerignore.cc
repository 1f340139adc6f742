#include "frontend/dockerfile/dockerignore.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace stagefarm::dockerfile {

std::string CleanPath(absl::string_view path) {
  if (path.empty()) return ".";
  bool rooted = path[0] == '/';
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!rooted) {
        out.push_back("..");
      }
      continue;
    }
    out.emplace_back(part);
  }
  std::string joined = absl::StrJoin(out, "/");
  if (rooted) return "/" + joined;
  return joined.empty() ? "." : joined;
}

std::vector<std::string> ReadDockerignore(absl::string_view text) {
  std::vector<std::string> patterns;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (first && absl::StartsWith(line, "\xEF\xBB\xBF")) line.remove_prefix(3);
    first = false;
    if (absl::StartsWith(line, "#")) continue;
    absl::string_view pattern = absl::StripAsciiWhitespace(line);
    if (pattern.empty()) continue;
    bool invert = pattern[0] == '!';
    if (invert) pattern = absl::StripAsciiWhitespace(pattern.substr(1));
    std::string cleaned;
    if (!pattern.empty()) {
      cleaned = CleanPath(pattern);
      if (cleaned.size() > 1 && cleaned[0] == '/') cleaned.erase(0, 1);
    }
    patterns.push_back(invert ? "!" + cleaned : cleaned);
  }
  return patterns;
}

absl::StatusOr<DockerignoreMatcher::Pattern> DockerignoreMatcher::Compile(
    absl::string_view raw) {
  Pattern p;
  absl::string_view text = raw;
  if (!text.empty() && text[0] == '!') {
    p.exclusion = true;
    text.remove_prefix(1);
    if (text.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          ".dockerignore: illegal exclusion pattern: \"", raw, "\""));
    }
  }
  std::string cleaned = CleanPath(text);
  size_t i = 0;
  while (i < cleaned.size()) {
    char c = cleaned[i++];
    Token t;
    if (c == '*') {
      if (i < cleaned.size() && cleaned[i] == '*') {
        ++i;
        if (i < cleaned.size() && cleaned[i] == '/') ++i;
        t.kind = i == cleaned.size() ? Token::kAnyRest : Token::kAnyDirs;
      } else {
        t.kind = Token::kStar;
      }
    } else if (c == '?') {
      t.kind = Token::kQuestion;
    } else if (c == '[') {
      t.kind = Token::kClass;
      if (i < cleaned.size() && cleaned[i] == '^') {
        t.negated = true;
        ++i;
      }
      bool closed = false;
      bool first = true;
      while (i < cleaned.size()) {
        char d = cleaned[i];
        if (d == ']' && !first) {
          closed = true;
          ++i;
          break;
        }
        first = false;
        if (d == '\\' && i + 1 < cleaned.size()) {
          t.class_chars.push_back(cleaned[i + 1]);
          t.class_chars.push_back(cleaned[i + 1]);
          i += 2;
          continue;
        }
        char lo = d, hi = d;
        if (i + 2 < cleaned.size() && cleaned[i + 1] == '-' &&
            cleaned[i + 2] != ']') {
          hi = cleaned[i + 2];
          i += 3;
        } else {
          ++i;
        }
        if (hi < lo) {
          return absl::InvalidArgumentError(absl::StrCat(
              ".dockerignore: invalid range in pattern \"", raw, "\""));
        }
        t.class_chars.push_back(lo);
        t.class_chars.push_back(hi);
      }
      if (!closed) {
        return absl::InvalidArgumentError(absl::StrCat(
            ".dockerignore: unterminated character class in pattern \"", raw,
            "\""));
      }
    } else if (c == '\\') {
      t.kind = Token::kLiteral;
      t.literal = i < cleaned.size() ? cleaned[i++] : '\\';
    } else {
      t.kind = Token::kLiteral;
      t.literal = c;
    }
    p.tokens.push_back(std::move(t));
  }
  return p;
}

std::vector<char> DockerignoreMatcher::MatchPrefixes(
    const std::vector<Token>& tokens, absl::string_view path) {
  // reachable[j]: the tokens so far match path[0, j). Every token is one
  // linear sweep, so a pattern costs O(tokens * length) whatever its stars.
  const size_t n = path.size();
  std::vector<char> reachable(n + 1, 0), next(n + 1, 0);
  reachable[0] = 1;
  for (const Token& t : tokens) {
    std::fill(next.begin(), next.end(), 0);
    bool active = false;
    switch (t.kind) {
      case Token::kLiteral:
        for (size_t j = 0; j < n; ++j) {
          if (reachable[j] && path[j] == t.literal) next[j + 1] = 1;
        }
        break;
      case Token::kQuestion:
        for (size_t j = 0; j < n; ++j) {
          if (reachable[j] && path[j] != '/') next[j + 1] = 1;
        }
        break;
      case Token::kClass:
        for (size_t j = 0; j < n; ++j) {
          if (!reachable[j] || path[j] == '/') continue;
          bool in = false;
          for (size_t k = 0; k + 1 < t.class_chars.size(); k += 2) {
            if (path[j] >= t.class_chars[k] &&
                path[j] <= t.class_chars[k + 1]) {
              in = true;
            }
          }
          if (in != t.negated) next[j + 1] = 1;
        }
        break;
      case Token::kStar:  // [^/]*
        for (size_t k = 0; k <= n; ++k) {
          if (reachable[k]) active = true;
          if (active) next[k] = 1;
          if (k < n && path[k] == '/') active = false;
        }
        break;
      case Token::kAnyDirs:  // (.*/)?
        for (size_t k = 0; k <= n; ++k) {
          if (reachable[k]) next[k] = 1;
          if (k > 0 && active && path[k - 1] == '/') next[k] = 1;
          if (reachable[k]) active = true;
        }
        break;
      case Token::kAnyRest:  // .*
        for (size_t k = 0; k <= n; ++k) {
          if (reachable[k]) active = true;
          if (active) next[k] = 1;
        }
        break;
    }
    std::swap(reachable, next);
  }
  return reachable;
}

absl::StatusOr<DockerignoreMatcher> DockerignoreMatcher::Create(
    const std::vector<std::string>& patterns) {
  DockerignoreMatcher m;
  for (const std::string& raw : patterns) {
    if (raw.empty()) continue;
    absl::StatusOr<Pattern> p = Compile(raw);
    if (!p.ok()) return p.status();
    m.has_exceptions_ = m.has_exceptions_ || p->exclusion;
    m.patterns_.push_back(std::move(*p));
  }
  return m;
}

bool DockerignoreMatcher::Excluded(absl::string_view raw_path) const {
  std::string path = CleanPath(raw_path);
  bool matched = false;
  for (const Pattern& p : patterns_) {
    if (p.exclusion != matched) continue;
    // One pass answers the path and all its parent directories: a parent is
    // the prefix that ends just before a "/".
    std::vector<char> ends = MatchPrefixes(p.tokens, path);
    bool match = ends[path.size()] != 0;
    for (size_t i = 0; !match && i < path.size(); ++i) {
      if (path[i] == '/' && ends[i]) match = true;
    }
    if (match) matched = !p.exclusion;
  }
  return matched;
}

std::vector<std::string> IgnoreFileCandidates(absl::string_view dockerfile_path,
                                              absl::string_view context_dir) {
  return {absl::StrCat(dockerfile_path, ".dockerignore"),
          absl::StrCat(context_dir, context_dir.empty() ? "" : "/",
                       ".dockerignore")};
}

}  // namespace stagefarm::dockerfile
