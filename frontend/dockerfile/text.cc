#include "frontend/dockerfile/text.h"

#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "frontend/dockerfile/utf8.h"

namespace stagefarm::dockerfile {
namespace {

// Decodes one UTF-8 rune at s[pos]. Returns its width (>= 1); sets `valid`
// false for an invalid or truncated sequence (width 1, like Go's RuneError).
inline uint32_t DecodeRune(absl::string_view s, size_t pos, size_t* width,
                           bool* valid) {
  unsigned char c = static_cast<unsigned char>(s[pos]);
  *valid = true;
  if (c < 0x80) {
    *width = 1;
    return c;
  }
  int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || c > 0xF4 || pos + n > s.size()) {
    *width = 1;
    *valid = false;
    return 0xFFFD;
  }
  uint32_t r = c & (0xFF >> (n + 1));
  for (int i = 1; i < n; ++i) {
    unsigned char cc = static_cast<unsigned char>(s[pos + i]);
    if ((cc & 0xC0) != 0x80) {
      *width = 1;
      *valid = false;
      return 0xFFFD;
    }
    r = r << 6 | (cc & 0x3F);
  }
  bool overlong =
      (n == 2 && r < 0x80) || (n == 3 && r < 0x800) || (n == 4 && r < 0x10000);
  if (overlong || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) {
    *width = 1;
    *valid = false;
    return 0xFFFD;
  }
  *width = static_cast<size_t>(n);
  return r;
}

// Go's unicode.IsPrint, approximated for runes >= 0x80: graphic unless a
// control, format, separator (other than U+0020), private-use, surrogate or
// non-character code point. Exact for ASCII and Latin-1.
bool IsPrintRune(uint32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  if (r < 0xA0 || r == 0xA0 || r == 0xAD) return false;
  if (r == 0x034F || r == 0x061C || r == 0x115F || r == 0x1160 || r == 0x1680 ||
      r == 0x180E || r == 0x3000 || r == 0x3164 || r == 0xFEFF || r == 0xFFA0) {
    return false;
  }
  if (r >= 0x0600 && r <= 0x0605) return false;
  if (r >= 0x2000 && r <= 0x200F) return false;
  if (r >= 0x2028 && r <= 0x202F) return false;
  if (r >= 0x205F && r <= 0x206F) return false;
  if (r >= 0xD800 && r <= 0xF8FF) return false;  // surrogates, private use
  if (r >= 0xFFF0 && r <= 0xFFFB) return false;
  if ((r & 0xFFFE) == 0xFFFE) return false;  // non-characters
  if (r >= 0xFDD0 && r <= 0xFDEF) return false;
  if (r >= 0xE0000 && r <= 0xE0FFF) return false;  // tags, variation selectors
  if (r >= 0xF0000) return false;                  // planes 15 and 16
  return true;
}

// The end of the run of bytes from `pos` that a word takes as they are:
// ASCII, neither a quote nor the escape token, and (outside quotes) not
// white space. The word splitters copy such a run at once.
size_t PlainRunEnd(absl::string_view s, size_t pos, char escape,
                   bool in_quotes) {
  size_t end = pos;
  while (end < s.size()) {
    char c = s[end];
    if (static_cast<unsigned char>(c) >= 0x80 || c == '\'' || c == '"' ||
        c == escape || (!in_quotes && IsAsciiSpace(c))) {
      break;
    }
    ++end;
  }
  return end;
}

}  // namespace

size_t UnicodeSpaceWidthAt(absl::string_view s, size_t pos) {
  size_t width;
  bool valid;
  uint32_t r = DecodeRune(s, pos, &width, &valid);
  return valid && IsUnicodeSpace(r) ? width : 0;
}

absl::string_view TrimLeftSpace(absl::string_view s) {
  size_t i = 0;
  while (size_t w = SpaceWidthAt(s, i)) i += w;
  return s.substr(i);
}

absl::string_view TrimSpace(absl::string_view s) {
  s = TrimLeftSpace(s);
  while (!s.empty()) {
    // Find the start of the last rune.
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 &&
           s.size() - start < 4) {
      --start;
    }
    if (SpaceWidthAt(s, start) == s.size() - start) {
      s.remove_suffix(s.size() - start);
    } else {
      break;
    }
  }
  return s;
}

absl::string_view ExtractFlags(absl::string_view line, char escape,
                               std::vector<std::string>* flags) {
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  auto append_byte = [&word](char c) {
    // Go appends string(rune(byte)): bytes >= 0x80 become Latin-1 runes.
    AppendUtf8(static_cast<unsigned char>(c), &word);
  };
  for (size_t pos = 0; pos <= line.size(); ++pos) {
    if (phase != kSpaces) {
      size_t end = PlainRunEnd(line, pos, escape, phase == kQuote);
      if (end > pos) {
        word.append(line.data() + pos, end - pos);
        pos = end - 1;
        continue;
      }
    }
    char ch = pos < line.size() ? line[pos] : 0;
    if (phase == kSpaces) {
      if (pos == line.size()) break;
      if (IsByteSpace(ch)) continue;
      if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') {
        return line.substr(pos);
      }
      phase = kWord;
    }
    if (pos == line.size()) {
      if (word != "--" && (blank_ok || !word.empty())) flags->push_back(word);
      break;
    }
    if (phase == kWord) {
      if (IsByteSpace(ch)) {
        phase = kSpaces;
        if (word == "--") return line.substr(pos);
        if (blank_ok || !word.empty()) flags->push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kQuote;
        continue;
      }
      if (ch == escape) {
        if (pos + 1 == line.size()) continue;
        ch = line[++pos];
      }
      append_byte(ch);
      continue;
    }
    // kQuote
    if (ch == quote) {
      phase = kWord;
      continue;
    }
    if (ch == escape) {
      if (pos + 1 == line.size()) {
        phase = kWord;
        continue;
      }
      ch = line[++pos];
    }
    append_byte(ch);
  }
  return absl::string_view();
}

std::vector<std::string> SplitWordsKeepingQuotes(absl::string_view rest,
                                                 char escape) {
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::vector<std::string> words;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  size_t width = 0;
  for (size_t pos = 0; pos <= rest.size(); pos += width) {
    if (phase != kSpaces) {
      size_t end = PlainRunEnd(rest, pos, escape, phase == kQuote);
      if (end > pos) {
        word.append(rest.data() + pos, end - pos);
        width = end - pos;
        continue;
      }
    }
    uint32_t ch = 0;
    bool valid = true;
    width = 1;
    if (pos < rest.size()) ch = DecodeRune(rest, pos, &width, &valid);
    if (phase == kSpaces) {
      if (pos == rest.size()) break;
      if (valid && IsUnicodeSpace(ch)) continue;
      phase = kWord;
    }
    if (pos == rest.size()) {
      if (blank_ok || !word.empty()) words.push_back(word);
      break;
    }
    if (phase == kWord) {
      if (valid && IsUnicodeSpace(ch)) {
        phase = kSpaces;
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = static_cast<char>(ch);
        blank_ok = true;
        phase = kQuote;
      }
      if (ch == static_cast<unsigned char>(escape)) {
        if (pos + width == rest.size()) continue;
        AppendUtf8(ch, &word);
        pos += width;
        ch = DecodeRune(rest, pos, &width, &valid);
      }
      AppendUtf8(ch, &word);
      continue;
    }
    // kQuote
    if (ch == static_cast<unsigned char>(quote)) phase = kWord;
    if (ch == static_cast<unsigned char>(escape) && quote != '\'') {
      if (pos + width == rest.size()) {
        phase = kWord;
        continue;
      }
      pos += width;
      AppendUtf8(ch, &word);
      ch = DecodeRune(rest, pos, &width, &valid);
    }
    AppendUtf8(ch, &word);
  }
  return words;
}

std::vector<Heredoc> HeredocsFromLine(absl::string_view line) {
  std::vector<Heredoc> docs;
  for (const std::string& word : SplitWordsKeepingQuotes(line, '\\')) {
    // ^(\d*)<<(-?)(name)$ where name has no '<'.
    size_t i = 0;
    while (i < word.size() && word[i] >= '0' && word[i] <= '9') ++i;
    if (word.compare(i, 2, "<<") != 0) continue;
    Heredoc doc;
    // A file descriptor that does not fit an int is not a heredoc marker.
    if (i > 0 && !absl::SimpleAtoi(word.substr(0, i), &doc.fd)) continue;
    i += 2;
    if (i < word.size() && word[i] == '-') {
      doc.chomp = true;
      ++i;
    }
    std::string raw = word.substr(i);
    if (raw.empty() || raw.find('<') != std::string::npos) continue;
    // Quotes and escapes are removed from the name; any quoting turns off
    // expansion of the body.
    std::string name;
    char quote = 0;
    bool quoted = false;
    for (size_t k = 0; k < raw.size(); ++k) {
      char c = raw[k];
      if (quote != 0) {
        if (c == quote) {
          quote = 0;
        } else if (c == '\\' && quote == '"' && k + 1 < raw.size()) {
          name.push_back(raw[++k]);
        } else {
          name.push_back(c);
        }
      } else if (c == '\'' || c == '"') {
        quote = c;
        quoted = true;
      } else if (c == '\\' && k + 1 < raw.size()) {
        name.push_back(raw[++k]);
        quoted = true;
      } else {
        name.push_back(c);
      }
    }
    if (name.empty()) continue;
    doc.name = name;
    doc.expand = !quoted;
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::string GoQuote(absl::string_view s) {
  std::string out = "\"";
  size_t width = 0;
  for (size_t pos = 0; pos < s.size(); pos += width) {
    bool valid;
    uint32_t r = DecodeRune(s, pos, &width, &valid);
    if (!valid) {
      out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(s[pos]));
      continue;
    }
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
      continue;
    }
    if (IsPrintRune(r)) {
      out.append(s.data() + pos, width);
      continue;
    }
    switch (r) {
      case '\a':
        out += "\\a";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\v':
        out += "\\v";
        continue;
      default:
        break;
    }
    if (r < 0x20 || r == 0x7F) {
      out += absl::StrFormat("\\x%02x", r);
    } else if (r < 0x10000) {
      out += absl::StrFormat("\\u%04x", r);
    } else {
      out += absl::StrFormat("\\U%08x", r);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace stagefarm::dockerfile
