#include "frontend/dockerfile/parser.h"

#include <cctype>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "frontend/dockerfile/text.h"
#include "nlohmann/json.hpp"

namespace stagefarm::dockerfile {
namespace {

class ParseError {
 public:
  static absl::Status At(absl::string_view file, int line,
                         absl::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", line, ": ", message));
  }
  static absl::Status At(absl::string_view file, int line, int column,
                         absl::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", line, ":", column, ": ", message));
  }
};

// Splits `text` like Go's bufio.ScanLines: on "\n", dropping one trailing
// "\r" per line; a last line without "\n" counts if it is not empty.
std::vector<absl::string_view> SplitLines(absl::string_view text) {
  std::vector<absl::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    absl::string_view line = nl == absl::string_view::npos
                                 ? text.substr(pos)
                                 : text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == absl::string_view::npos) break;
    pos = nl + 1;
  }
  return lines;
}

bool IsCommentLine(absl::string_view line) {
  absl::string_view t = TrimLeftSpace(line);
  return !t.empty() && t[0] == '#';
}

// Parser directives: "# name = value" lines at the very top.
class DirectiveReader {
 public:
  explicit DirectiveReader(Directives* d) : d_(d) {}

  // Returns an error for a repeated or invalid directive.
  absl::Status Consider(absl::string_view line) {
    if (done_) return absl::OkStatus();
    std::string name, value;
    if (!Match(line, &name, &value)) {
      done_ = true;
      return absl::OkStatus();
    }
    std::string lower = absl::AsciiStrToLower(name);
    if (lower != "syntax" && lower != "escape" && lower != "check") {
      done_ = true;
      return absl::OkStatus();
    }
    if (!seen_.insert(lower).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("only one ", lower, " parser directive can be used"));
    }
    if (lower == "escape") {
      if (value != "`" && value != "\\") {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid escape token '", value, "' does not match ` or \\"));
      }
      d_->escape = value[0];
      d_->escape_set = true;
    } else if (lower == "syntax") {
      d_->syntax = value;
    } else {
      d_->check = value;
    }
    return absl::OkStatus();
  }

 private:
  // ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$
  static bool Match(absl::string_view line, std::string* name,
                    std::string* value) {
    size_t i = 0;
    if (i >= line.size() || line[i] != '#') return false;
    ++i;
    while (i < line.size() && IsAsciiSpace(line[i])) ++i;
    size_t start = i;
    if (i >= line.size() || !absl::ascii_isalpha(line[i])) return false;
    while (i < line.size() && absl::ascii_isalnum(line[i])) ++i;
    *name = std::string(line.substr(start, i - start));
    while (i < line.size() && IsAsciiSpace(line[i])) ++i;
    if (i >= line.size() || line[i] != '=') return false;
    ++i;
    while (i < line.size() && IsAsciiSpace(line[i])) ++i;
    absl::string_view rest = line.substr(i);
    while (!rest.empty() && IsAsciiSpace(rest.back())) rest.remove_suffix(1);
    if (rest.empty()) return false;
    *value = std::string(rest);
    return true;
  }

  Directives* d_;
  bool done_ = false;
  std::set<std::string> seen_;
};

// Removes a trailing line continuation: the escape token, not preceded by
// another escape token, followed by optional spaces or tabs. Returns true if
// the line continues.
bool TrimContinuation(std::string* line, char escape) {
  size_t end = line->size();
  while (end > 0 && ((*line)[end - 1] == ' ' || (*line)[end - 1] == '\t'))
    --end;
  if (end == 0 || (*line)[end - 1] != escape) return false;
  if (end >= 2 && (*line)[end - 2] == escape) return false;
  line->resize(end - 1);
  return true;
}

constexpr char kNotStringArray[] =
    "when using JSON array syntax, arrays must be comprised of strings only";

// JSON array of strings at the start of `rest` (after leading space). Like
// Go's json.Decoder, text after the first value is ignored.
enum class JsonResult { kOk, kNotJson, kNotStrings };
// The common case, without a general JSON parser: an array of strings with
// simple escapes. Returns false (and leaves the verdict to the full parser)
// for anything else.
bool FastStringArray(absl::string_view s, std::vector<std::string>* out) {
  size_t i = 1;  // after '['
  auto ws = [&] {
    while (i < s.size() &&
           (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
      ++i;
  };
  out->clear();
  ws();
  if (i < s.size() && s[i] == ']') return true;
  while (true) {
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    std::string str;
    while (true) {
      if (i >= s.size()) return false;
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') {
        ++i;
        break;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (i + 1 >= s.size()) return false;
        char e = s[i + 1];
        switch (e) {
          case '"':
            str.push_back('"');
            break;
          case '\\':
            str.push_back('\\');
            break;
          case '/':
            str.push_back('/');
            break;
          case 'b':
            str.push_back('\b');
            break;
          case 'f':
            str.push_back('\f');
            break;
          case 'n':
            str.push_back('\n');
            break;
          case 'r':
            str.push_back('\r');
            break;
          case 't':
            str.push_back('\t');
            break;
          default:
            return false;  // \u and invalid escapes: full parser
        }
        i += 2;
        continue;
      }
      // Go's decoder reads a byte that is not UTF-8 as U+FFFD.
      size_t run = i;
      bool ascii = true;
      while (run < s.size() && s[run] != '"' && s[run] != '\\' &&
             static_cast<unsigned char>(s[run]) >= 0x20) {
        ascii = ascii && static_cast<unsigned char>(s[run]) < 0x80;
        ++run;
      }
      absl::string_view part = s.substr(i, run - i);
      if (ascii) {
        str.append(part.data(), part.size());
      } else {
        str.append(stagefarm::json::ValidUtf8(part));
      }
      i = run;
    }
    out->push_back(std::move(str));
    ws();
    if (i < s.size() && s[i] == ',') {
      ++i;
      ws();
      continue;
    }
    if (i < s.size() && s[i] == ']') return true;
    return false;
  }
}

JsonResult ParseJsonArray(absl::string_view rest,
                          std::vector<std::string>* out) {
  rest = TrimLeftSpace(rest);
  if (rest.empty() || rest[0] != '[') return JsonResult::kNotJson;
  if (FastStringArray(rest, out)) return JsonResult::kOk;
  // Anything unusual (numbers, nesting, \u escapes, control bytes) goes
  // through a full JSON parser for the exact verdict.
  nlohmann::json value;
  std::istringstream in{stagefarm::json::ValidUtf8(rest)};
  try {
    in >> value;
  } catch (const nlohmann::json::exception&) {
    return JsonResult::kNotJson;
  }
  if (!value.is_array()) return JsonResult::kNotJson;
  out->clear();
  for (const auto& element : value) {
    if (!element.is_string()) return JsonResult::kNotStrings;
    out->push_back(element.get<std::string>());
  }
  return JsonResult::kOk;
}

std::vector<std::string> SplitWhitespace(absl::string_view rest) {
  std::vector<std::string> out;
  if (rest.empty()) return out;
  size_t start = 0;
  size_t i = 0;
  while (i < rest.size()) {
    if (IsAsciiSpaceNoNewline(rest[i])) {
      out.emplace_back(rest.substr(start, i - start));
      while (i < rest.size() && IsAsciiSpaceNoNewline(rest[i])) ++i;
      start = i;
    } else {
      ++i;
    }
  }
  out.emplace_back(rest.substr(start));
  return out;
}

// A JSON array of strings, else `fallback` of the rest (a valid array with
// a non-string element is an error).
template <typename Fallback>
absl::Status ParseJsonOr(absl::string_view rest, Node* node,
                         Fallback fallback) {
  if (rest.empty()) return absl::OkStatus();
  switch (ParseJsonArray(rest, &node->args)) {
    case JsonResult::kOk:
      node->json = true;
      return absl::OkStatus();
    case JsonResult::kNotStrings:
      node->args.clear();
      return absl::InvalidArgumentError(kNotStringArray);
    case JsonResult::kNotJson:
      node->args = fallback(rest);
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status ParseMaybeJson(absl::string_view rest, Node* node) {
  return ParseJsonOr(rest, node, [](absl::string_view r) {
    return std::vector<std::string>{std::string(r)};
  });
}

absl::Status ParseMaybeJsonToList(absl::string_view rest, Node* node) {
  return ParseJsonOr(rest, node, SplitWhitespace);
}

absl::Status ParseNameVal(absl::string_view rest, absl::string_view keyword,
                          char escape, Node* node) {
  std::vector<std::string> words = SplitWordsKeepingQuotes(rest, escape);
  if (words.empty()) return absl::OkStatus();
  if (words[0].find('=') == std::string::npos) {
    // Old form: KEY name value (the value is the raw rest of the line).
    size_t i = 0;
    while (i < rest.size() && !IsAsciiSpaceNoNewline(rest[i])) ++i;
    if (i == rest.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          absl::AsciiStrToUpper(keyword), " must have two arguments"));
    }
    size_t j = i;
    while (j < rest.size() && IsAsciiSpaceNoNewline(rest[j])) ++j;
    node->args = {std::string(rest.substr(0, i)), std::string(rest.substr(j)),
                  ""};
    return absl::OkStatus();
  }
  for (const std::string& word : words) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("Syntax error - can't find = in ", GoQuote(word),
                       ". Must be of the form: name=value"));
    }
    node->args.push_back(word.substr(0, eq));
    node->args.push_back(word.substr(eq + 1));
    node->args.push_back("=");
  }
  return absl::OkStatus();
}

absl::Status ParseHealthcheck(absl::string_view rest, Node* node) {
  size_t sep = 0;
  while (sep < rest.size() && !IsByteSpace(rest[sep])) ++sep;
  if (sep == 0) return absl::OkStatus();
  size_t next = sep;
  while (next < rest.size() && IsByteSpace(rest[next])) ++next;
  Node cmd;
  absl::Status s = ParseMaybeJson(rest.substr(next), &cmd);
  if (!s.ok()) return s;
  node->args.push_back(std::string(rest.substr(0, sep)));
  for (auto& a : cmd.args) node->args.push_back(std::move(a));
  node->json = cmd.json;
  return absl::OkStatus();
}

absl::StatusOr<Node> NodeFromLine(absl::string_view line, char escape);

absl::Status ParseArgs(absl::string_view lower, absl::string_view rest,
                       char escape, Node* node) {
  if (lower == "run" || lower == "cmd" || lower == "entrypoint" ||
      lower == "shell") {
    return ParseMaybeJson(rest, node);
  }
  if (lower == "add" || lower == "copy" || lower == "volume") {
    return ParseMaybeJsonToList(rest, node);
  }
  if (lower == "from" || lower == "expose") {
    node->args = SplitWhitespace(rest);
    return absl::OkStatus();
  }
  if (lower == "maintainer" || lower == "user" || lower == "workdir" ||
      lower == "stopsignal") {
    if (!rest.empty()) node->args = {std::string(rest)};
    return absl::OkStatus();
  }
  if (lower == "env" || lower == "label") {
    return ParseNameVal(rest, lower, escape, node);
  }
  if (lower == "arg") {
    node->args = SplitWordsKeepingQuotes(rest, escape);
    return absl::OkStatus();
  }
  if (lower == "healthcheck") return ParseHealthcheck(rest, node);
  if (lower == "onbuild") {
    if (rest.empty()) return absl::OkStatus();
    absl::StatusOr<Node> inner = NodeFromLine(rest, escape);
    if (!inner.ok()) return inner.status();
    node->inner = std::make_unique<Node>(std::move(*inner));
    return absl::OkStatus();
  }
  // Unknown instruction: the parser keeps going; the instruction layer
  // reports it.
  node->ignored_args = true;
  return absl::OkStatus();
}

absl::StatusOr<Node> NodeFromLine(absl::string_view line, char escape) {
  Node node;
  node.original = std::string(line);
  absl::string_view cmdline = TrimSpace(line);
  size_t i = 0;
  while (i < cmdline.size() && !IsAsciiSpaceNoNewline(cmdline[i])) ++i;
  node.keyword = std::string(cmdline.substr(0, i));
  absl::string_view rest;
  if (i < cmdline.size()) {
    while (i < cmdline.size() && IsAsciiSpaceNoNewline(cmdline[i])) ++i;
    rest = ExtractFlags(cmdline.substr(i), escape, &node.flags);
    rest = TrimSpace(rest);
  }
  absl::Status s = ParseArgs(node.LowerKeyword(), rest, escape, &node);
  if (!s.ok()) return s;
  return node;
}

bool CanContainHeredoc(const Node& node) {
  const Node& n = node.inner ? *node.inner : node;
  std::string k = n.LowerKeyword();
  return (k == "run" || k == "copy" || k == "add") && !n.json;
}

}  // namespace

std::string Node::LowerKeyword() const {
  return absl::AsciiStrToLower(keyword);
}

absl::StatusOr<ParsedDockerfile> Parse(absl::string_view text,
                                       absl::string_view filename) {
  ParsedDockerfile out;
  DirectiveReader directives(&out.directives);
  std::vector<absl::string_view> lines = SplitLines(text);
  if (!lines.empty() && absl::StartsWith(lines[0], "\xEF\xBB\xBF")) {
    lines[0].remove_prefix(3);
  }
  size_t next = 0;
  int current = 0;
  std::vector<std::string> comments;
  while (next < lines.size()) {
    absl::string_view raw = lines[next++];
    ++current;
    absl::string_view stripped = TrimLeftSpace(raw);
    absl::Status s = directives.Consider(stripped);
    if (!s.ok()) return ParseError::At(filename, current, s.message());
    char escape = out.directives.escape;
    int start = current;
    if (IsCommentLine(raw)) {
      absl::string_view msg = stripped.substr(1);
      if (!msg.empty() && msg[0] == ' ') msg.remove_prefix(1);
      comments.emplace_back(msg);
      continue;
    }
    if (stripped.empty()) {
      comments.clear();
      continue;
    }
    std::string line(stripped);
    bool continues = TrimContinuation(&line, escape);
    if (!continues && line.empty()) continue;
    while (continues && next < lines.size()) {
      absl::string_view cont = lines[next++];
      ++current;
      if (IsCommentLine(cont)) continue;
      if (TrimLeftSpace(cont).empty()) {
        out.warnings.push_back(
            {current,
             "empty continuation line (removed from the instruction)"});
        continue;
      }
      std::string piece(cont);
      continues = TrimContinuation(&piece, escape);
      line += piece;
    }
    if (TrimSpace(line).empty()) continue;
    absl::StatusOr<Node> node = NodeFromLine(line, escape);
    // Columns are 1-based in the instruction's first physical line.
    const int indent = static_cast<int>(lines[start - 1].size() -
                                        TrimLeftSpace(lines[start - 1]).size());
    if (!node.ok()) {
      size_t bracket = line.find('[');
      int column = absl::StrContains(node.status().message(), "JSON array") &&
                           bracket != std::string::npos
                       ? indent + static_cast<int>(bracket) + 1
                       : indent + 1;
      return ParseError::At(filename, start, column, node.status().message());
    }
    if (line.find("<<") != std::string::npos && CanContainHeredoc(*node)) {
      for (Heredoc& doc : HeredocsFromLine(line)) {
        bool terminated = false;
        while (next < lines.size()) {
          absl::string_view body = lines[next++];
          ++current;
          absl::string_view candidate = body;
          if (doc.chomp) {
            while (!candidate.empty() && candidate[0] == '\t')
              candidate.remove_prefix(1);
          }
          if (candidate == doc.name) {
            terminated = true;
            break;
          }
          // <<- strips leading tabs from every body line, as from the
          // terminator.
          doc.content.append(doc.chomp ? candidate.data() : body.data(),
                             doc.chomp ? candidate.size() : body.size());
          doc.content.push_back('\n');
        }
        if (!terminated) {
          size_t marker = line.find("<<");
          return ParseError::At(filename, start,
                                indent + static_cast<int>(marker) + 1,
                                absl::StrCat("unterminated heredoc <<",
                                             doc.name, " (no line equal to \"",
                                             doc.name, "\" before the end)"));
        }
        node->heredocs.push_back(std::move(doc));
      }
    }
    node->start_line = start;
    node->end_line = current;
    node->comments = std::move(comments);
    comments.clear();
    if (out.children.empty()) out.start_line = start;
    out.end_line = current;
    out.children.push_back(std::move(*node));
  }
  if (out.children.empty()) {
    return ParseError::At(filename, current, "file with no instructions");
  }
  return out;
}

}  // namespace stagefarm::dockerfile
