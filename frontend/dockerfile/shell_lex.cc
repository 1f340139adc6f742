#include "frontend/dockerfile/shell_lex.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/utf8.h"

namespace stagefarm::dockerfile {
namespace {

constexpr uint32_t kEof = 0xFFFFFFFF;
// Bytes that are not valid UTF-8 are carried through as kRawByte + byte.
constexpr uint32_t kRawByte = 0x110000;

std::vector<uint32_t> Decode(absl::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    bool ok = n > 0 && i + n <= s.size() && c <= 0xF4;
    uint32_t r = n == 1 ? c : (c & (0xFF >> (n + 1)));
    for (int k = 1; ok && k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      r = r << 6 | (cc & 0x3F);
    }
    if (ok && ((n == 3 && r < 0x800) || (n == 4 && r < 0x10000) ||
               (r >= 0xD800 && r <= 0xDFFF) || r > 0x10FFFF)) {
      ok = false;
    }
    if (!ok) {
      out.push_back(kRawByte + c);
      ++i;
    } else {
      out.push_back(r);
      i += static_cast<size_t>(n);
    }
  }
  return out;
}

void Append(uint32_t r, std::string* out) {
  if (r >= kRawByte) {
    out->push_back(static_cast<char>(r - kRawByte));
  } else {
    AppendUtf8(r, out);
  }
}

bool IsSpaceRune(uint32_t r) { return IsUnicodeSpace(r); }

bool IsDigitRune(uint32_t r) { return r >= '0' && r <= '9'; }
// Letters: ASCII letters and any non-ASCII code point that is not space or
// punctuation in the Latin-1 block (an approximation of unicode.IsLetter
// that accepts names like 안녕).
bool IsLetterRune(uint32_t r) {
  if (r < 0x80) return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
  if (r >= kRawByte) return false;
  if (r < 0xC0) return r == 0xAA || r == 0xB5 || r == 0xBA;
  return r != 0xD7 && r != 0xF7 && !IsSpaceRune(r);
}
bool IsSpecialParam(uint32_t r) {
  return r == '@' || r == '*' || r == '#' || r == '?' || r == '-' || r == '$' ||
         r == '!' || r == '0';
}

struct Words {
  std::string word;
  std::vector<std::string> words;
  bool in_word = false;

  void AddChar(uint32_t r) {
    if (IsSpaceRune(r)) {
      if (in_word && !word.empty()) {
        words.push_back(word);
        word.clear();
        in_word = false;
      }
    } else {
      AddRawChar(r);
    }
  }
  void AddRawChar(uint32_t r) {
    Append(r, &word);
    in_word = true;
  }
  void AddString(const std::string& s) {
    for (uint32_t r : Decode(s)) AddChar(r);
  }
  void AddRawString(const std::string& s) {
    word += s;
    in_word = true;
  }
  std::vector<std::string> Get() {
    if (!word.empty()) {
      words.push_back(word);
      word.clear();
      in_word = false;
    }
    return words;
  }
};

// One expansion of one input; not reusable.
class Expander {
 public:
  Expander(const ShellLexOptions& options, absl::string_view input,
           const EnvLookup& env)
      : o_(options), in_(Decode(input)), env_(env) {}

  absl::Status Run(std::string* word, std::vector<std::string>* words) {
    return StopOn(kEof, word, words);
  }

 private:
  static constexpr int kMaxNesting = 100;
  int depth_ = 0;
  uint32_t Peek() const { return pos_ < in_.size() ? in_[pos_] : kEof; }
  uint32_t Next() { return pos_ < in_.size() ? in_[pos_++] : kEof; }

  absl::Status StopOn(uint32_t stop, std::string* result_out,
                      std::vector<std::string>* words_out) {
    std::string result;
    Words words;
    while (Peek() != kEof) {
      uint32_t ch = Peek();
      if (stop != kEof && ch == stop) {
        Next();
        *result_out = result;
        if (words_out) *words_out = words.Get();
        return absl::OkStatus();
      }
      if (ch == '$') {
        ASSIGN_OR_RETURN(std::string tmp, Dollar());
        result += tmp;
        words.AddString(tmp);
      } else if (ch == '\'' && !o_.skip_process_quotes) {
        ASSIGN_OR_RETURN(std::string tmp, SingleQuote());
        result += tmp;
        words.AddRawString(tmp);
      } else if (ch == '"' && !o_.skip_process_quotes) {
        ASSIGN_OR_RETURN(std::string tmp, DoubleQuote());
        result += tmp;
        words.AddRawString(tmp);
      } else {
        ch = Next();
        if (ch == static_cast<unsigned char>(o_.escape)) {
          if (o_.raw_escapes) {
            words.AddRawChar(ch);
            Append(ch, &result);
          }
          ch = Next();
          if (ch == kEof) break;
          words.AddRawChar(ch);
        } else {
          words.AddChar(ch);
        }
        Append(ch, &result);
      }
    }
    if (stop != kEof) {
      std::string s;
      Append(stop, &s);
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected end of statement while looking for matching ", s));
    }
    *result_out = result;
    if (words_out) *words_out = words.Get();
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> SingleQuote() {
    std::string result;
    uint32_t ch = Next();
    if (o_.raw_quotes) Append(ch, &result);
    while (true) {
      ch = Next();
      if (ch == kEof) {
        return absl::InvalidArgumentError(
            "unexpected end of statement while looking for matching "
            "single-quote");
      }
      if (ch == '\'') {
        if (o_.raw_quotes) Append(ch, &result);
        return result;
      }
      Append(ch, &result);
    }
  }

  absl::StatusOr<std::string> DoubleQuote() {
    std::string result;
    uint32_t ch = Next();
    if (o_.raw_quotes) Append(ch, &result);
    const uint32_t escape = static_cast<unsigned char>(o_.escape);
    while (true) {
      uint32_t p = Peek();
      if (p == kEof) {
        return absl::InvalidArgumentError(
            "unexpected end of statement while looking for matching "
            "double-quote");
      }
      if (p == '"') {
        ch = Next();
        if (o_.raw_quotes) Append(ch, &result);
        return result;
      }
      if (p == '$') {
        ASSIGN_OR_RETURN(std::string value, Dollar());
        result += value;
        continue;
      }
      ch = Next();
      if (ch == escape) {
        if (o_.raw_escapes) Append(ch, &result);
        uint32_t q = Peek();
        if (q == kEof) continue;  // a trailing escape is dropped
        if (q == '"' || q == '$' || q == escape) ch = Next();
      }
      Append(ch, &result);
    }
  }

  std::string Name() {
    std::string name;
    while (Peek() != kEof) {
      uint32_t ch = Peek();
      if (name.empty() && IsDigitRune(ch)) {
        while (IsDigitRune(Peek())) Append(Next(), &name);
        return name;
      }
      if (name.empty() && IsSpecialParam(ch)) {
        Append(Next(), &name);
        return name;
      }
      if (!IsLetterRune(ch) && !IsDigitRune(ch) && ch != '_') break;
      Append(Next(), &name);
    }
    return name;
  }

  std::optional<std::string> Get(const std::string& name) {
    if (name.empty()) return std::nullopt;
    return env_(name);
  }

  // The word up to '}' (with nested expansions), mapping a missing brace to
  // the bash-like message.
  absl::StatusOr<std::string> WordTo(uint32_t stop) {
    // Each nested ${...} recurses: bound it, so that a hostile Dockerfile
    // gets an error rather than exhausting the stack.
    if (depth_ >= kMaxNesting) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expansions nested deeper than ", kMaxNesting, " levels"));
    }
    ++depth_;
    std::string word;
    absl::Status s = StopOn(stop, &word, nullptr);
    --depth_;
    if (!s.ok()) {
      if (Peek() == kEof) {
        return absl::InvalidArgumentError(
            stop == '}' ? "syntax error: missing '}'"
                        : "syntax error: missing '/' in ${}");
      }
      return s;
    }
    return word;
  }

  absl::StatusOr<std::string> Dollar() {
    Next();  // '$'
    if (Peek() != '{') {
      std::string name = Name();
      if (name.empty()) return std::string("$");
      std::optional<std::string> value = Get(name);
      if (!value && o_.skip_unset) return "$" + name;
      return value.value_or("");
    }
    Next();  // '{'
    uint32_t p = Peek();
    if (p == kEof)
      return absl::InvalidArgumentError("syntax error: missing '}'");
    if (p == '{' || p == '}' || p == ':') {
      return absl::InvalidArgumentError("syntax error: bad substitution");
    }
    std::string name = Name();
    uint32_t ch = Next();
    std::optional<std::string> value;
    switch (ch) {
      case '}':
        value = Get(name);
        if (!value && o_.skip_unset) return "${" + name + "}";
        return value.value_or("");
      case '?': {
        ASSIGN_OR_RETURN(std::string word, WordTo('}'));
        value = Get(name);
        if (!value) {
          if (o_.skip_unset) return "${" + name + "?" + word + "}";
          return absl::InvalidArgumentError(absl::StrCat(
              name, ": ", word.empty() ? "is not allowed to be unset" : word));
        }
        return *value;
      }
      case ':': {
        uint32_t modifier = Next();
        ASSIGN_OR_RETURN(std::string word, WordTo('}'));
        value = Get(name);
        if (!value && o_.skip_unset) {
          std::string m;
          Append(modifier, &m);
          return "${" + name + ":" + m + word + "}";
        }
        std::string v = value.value_or("");
        switch (modifier) {
          case '+':
            return v.empty() ? v : word;
          case '-':
            return v.empty() ? word : v;
          case '?':
            if (!value) {
              return absl::InvalidArgumentError(absl::StrCat(
                  name, ": ",
                  word.empty() ? "is not allowed to be unset" : word));
            }
            if (v.empty()) {
              return absl::InvalidArgumentError(absl::StrCat(
                  name, ": ",
                  word.empty() ? "is not allowed to be empty" : word));
            }
            return v;
          default: {
            std::string m;
            Append(modifier, &m);
            return absl::InvalidArgumentError(
                absl::StrCat("unsupported modifier (", m, ") in substitution"));
          }
        }
      }
      case '+':
      case '-': {
        ASSIGN_OR_RETURN(std::string word, WordTo('}'));
        value = Get(name);
        if (!value && o_.skip_unset) {
          return absl::StrCat("${", name, ch == '+' ? "+" : "-", word, "}");
        }
        if (ch == '+') return value ? word : std::string();
        return value ? *value : word;
      }
      case '#':
      case '%': {
        bool longest = Peek() == ch;
        if (longest) Next();
        ASSIGN_OR_RETURN(std::string pattern, WordTo('}'));
        value = Get(name);
        if (!value && o_.skip_unset) {
          std::string op(longest ? 2 : 1, static_cast<char>(ch));
          return "${" + name + op + pattern + "}";
        }
        std::string v = value.value_or("");
        return ch == '#' ? TrimPrefix(v, pattern, longest)
                         : TrimSuffix(v, pattern, longest);
      }
      case '/': {
        bool all = Peek() == '/';
        if (all) Next();
        ASSIGN_OR_RETURN(std::string pattern, WordTo('/'));
        ASSIGN_OR_RETURN(std::string replacement, WordTo('}'));
        value = Get(name);
        if (!value && o_.skip_unset) {
          return absl::StrCat("${", name, all ? "//" : "/", pattern, "/",
                              replacement, "}");
        }
        return Replace(value.value_or(""), pattern, replacement, all);
      }
      default:
        if (name.empty()) {
          return absl::InvalidArgumentError("syntax error: bad substitution");
        }
        return absl::InvalidArgumentError(
            absl::StrCat("missing ':' in substitution of ${", name, "}"));
    }
  }

  static std::string TrimPrefix(const std::string& v,
                                const std::string& pattern, bool longest) {
    if (longest) {
      for (size_t n = v.size() + 1; n-- > 0;) {
        if (ShellPatternMatch(pattern, absl::string_view(v).substr(0, n))) {
          return v.substr(n);
        }
      }
    } else {
      for (size_t n = 0; n <= v.size(); ++n) {
        if (ShellPatternMatch(pattern, absl::string_view(v).substr(0, n))) {
          return v.substr(n);
        }
      }
    }
    return v;
  }

  static std::string TrimSuffix(const std::string& v,
                                const std::string& pattern, bool longest) {
    if (longest) {
      for (size_t n = 0; n <= v.size(); ++n) {
        if (ShellPatternMatch(pattern, absl::string_view(v).substr(n))) {
          return v.substr(0, n);
        }
      }
    } else {
      for (size_t n = v.size() + 1; n-- > 0;) {
        if (ShellPatternMatch(pattern, absl::string_view(v).substr(n))) {
          return v.substr(0, n);
        }
      }
    }
    return v;
  }

  // Replaces the leftmost-longest match (or every match) of `pattern`.
  static std::string Replace(const std::string& v, const std::string& pattern,
                             const std::string& replacement, bool all) {
    if (pattern.empty()) return v;
    std::string out;
    size_t i = 0;
    bool replaced = false;
    while (i <= v.size()) {
      size_t match_end = std::string::npos;
      if (!(replaced && !all)) {
        for (size_t end = v.size() + 1; end-- > i;) {
          if (end > i && ShellPatternMatch(pattern, absl::string_view(v).substr(
                                                        i, end - i))) {
            match_end = end;
            break;
          }
        }
      }
      if (match_end != std::string::npos) {
        out += replacement;
        i = match_end;
        replaced = true;
        continue;
      }
      if (i < v.size()) out.push_back(v[i]);
      ++i;
    }
    return out;
  }

  const ShellLexOptions& o_;
  std::vector<uint32_t> in_;
  size_t pos_ = 0;
  const EnvLookup& env_;
};

}  // namespace

EnvLookup EnvFromList(const std::vector<std::string>* entries) {
  return [entries](absl::string_view name) -> std::optional<std::string> {
    for (auto it = entries->rbegin(); it != entries->rend(); ++it) {
      size_t eq = it->find('=');
      absl::string_view key = absl::string_view(*it).substr(0, eq);
      if (key == name) {
        return eq == std::string::npos ? std::string() : it->substr(eq + 1);
      }
    }
    return std::nullopt;
  };
}

absl::StatusOr<std::string> ShellLex::ProcessWord(absl::string_view word,
                                                  const EnvLookup& env) const {
  Expander expander(options_, word, env);
  std::string result;
  std::vector<std::string> words;
  RETURN_IF_ERROR(expander.Run(&result, &words));
  return result;
}

absl::StatusOr<std::vector<std::string>> ShellLex::ProcessWords(
    absl::string_view word, const EnvLookup& env) const {
  Expander expander(options_, word, env);
  std::string result;
  std::vector<std::string> words;
  RETURN_IF_ERROR(expander.Run(&result, &words));
  return words;
}

std::vector<std::string> ShellLex::ReferencedNames(
    absl::string_view word) const {
  std::vector<std::string> names;
  EnvLookup record =
      [&names](absl::string_view name) -> std::optional<std::string> {
    names.emplace_back(name);
    return std::nullopt;
  };
  ShellLexOptions options = options_;
  options.skip_unset = false;
  Expander expander(options, word, record);
  std::string result;
  std::vector<std::string> words;
  expander.Run(&result, &words).IgnoreError();
  return names;
}

bool ShellPatternMatch(absl::string_view pattern, absl::string_view text) {
  size_t p = 0, t = 0;
  size_t star_p = std::string::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      char c = pattern[p];
      if (c == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (c == '?') {
        ++p;
        ++t;
        continue;
      }
      if (c == '[') {
        size_t q = p + 1;
        bool negate =
            q < pattern.size() && (pattern[q] == '!' || pattern[q] == '^');
        if (negate) ++q;
        bool matched = false;
        bool first = true;
        while (q < pattern.size() && (first || pattern[q] != ']')) {
          first = false;
          char lo = pattern[q];
          if (lo == '\\' && q + 1 < pattern.size()) lo = pattern[++q];
          char hi = lo;
          if (q + 2 < pattern.size() && pattern[q + 1] == '-' &&
              pattern[q + 2] != ']') {
            hi = pattern[q + 2];
            q += 2;
          }
          if (text[t] >= lo && text[t] <= hi) matched = true;
          ++q;
        }
        if (q < pattern.size() && matched != negate) {
          p = q + 1;
          ++t;
          continue;
        }
        if (q >= pattern.size() && text[t] == '[') {  // unterminated: literal
          ++p;
          ++t;
          continue;
        }
      } else {
        if (c == '\\' && p + 1 < pattern.size()) c = pattern[p + 1];
        if (c == text[t]) {
          p += pattern[p] == '\\' && p + 1 < pattern.size() ? 2 : 1;
          ++t;
          continue;
        }
      }
    }
    if (star_p == std::string::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace stagefarm::dockerfile
