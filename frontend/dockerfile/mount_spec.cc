#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "frontend/dockerfile/instruction_flags.h"

// RUN --mount specs.
namespace stagefarm::dockerfile::internal {
namespace {

// Splits "a=b,c=\"d,e\"" on commas outside double quotes (quotes removed).
std::vector<std::string> SplitCsv(absl::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

absl::StatusOr<Mount> ParseMount(const std::string& spec, int column,
                                 const Locator& at) {
  Mount m;
  m.column = column;
  std::vector<std::pair<std::string, std::string>> fields;
  for (const std::string& field : SplitCsv(spec)) {
    if (field.empty()) continue;
    size_t eq = field.find('=');
    std::string key = absl::AsciiStrToLower(field.substr(0, eq));
    std::string value = eq == std::string::npos ? "" : field.substr(eq + 1);
    if (key == "type") {
      m.type = value;
      if (value != "bind" && value != "cache" && value != "tmpfs" &&
          value != "secret" && value != "ssh") {
        std::string hint =
            Suggest(value, {"bind", "cache", "tmpfs", "secret", "ssh"});
        return at.Error(
            absl::StrCat("unsupported mount type \"", value, "\"",
                         hint.empty() ? " (bind, cache, tmpfs, secret or ssh)"
                                      : " (did you mean " + hint + "?)"),
            column);
      }
    } else {
      fields.emplace_back(key, value);
      if (eq == std::string::npos && key != "ro" && key != "rw" &&
          key != "readonly" && key != "required" && key != "type") {
        return at.Error(
            absl::StrCat("invalid field '", key, "' must be a key=value pair"),
            column);
      }
    }
  }
  for (const auto& [key, value] : fields) {
    if (key == "target" || key == "dst" || key == "destination") {
      m.target = value;
    } else if (key == "source" || key == "src") {
      m.source = value;
    } else if (key == "from") {
      if (value.find('$') != std::string::npos) {
        return at.Error(
            "'from' doesn't support variable expansion, define alias stage "
            "instead",
            column);
      }
      m.from = value;
    } else if (key == "id") {
      m.id = value;
    } else if (key == "sharing") {
      if (value != "shared" && value != "private" && value != "locked") {
        return at.Error(absl::StrCat("unsupported sharing value \"", value,
                                     "\" (shared, private or locked)"),
                        column);
      }
      m.sharing = value;
    } else if (key == "ro" || key == "readonly") {
      m.read_only = value.empty() || value == "true" || value == "1";
      m.read_only_set = true;
    } else if (key == "rw" || key == "readwrite") {
      m.read_only = !(value.empty() || value == "true" || value == "1");
      m.read_only_set = true;
    } else if (key == "required") {
      m.required = value.empty() || value == "true" || value == "1";
    } else if (key == "mode") {
      m.mode = value;
    } else if (key == "uid") {
      m.uid = value;
    } else if (key == "gid") {
      m.gid = value;
    } else if (key == "size") {
      m.size = value;
    } else if (key == "env") {
      m.env = value;
    } else {
      std::string hint = Suggest(
          key, {"type", "target", "source", "from", "id", "sharing", "mode",
                "uid", "gid", "size", "readonly", "required", "env"});
      return at.Error(
          absl::StrCat("unexpected key '", key, "' in '", spec, "'",
                       hint.empty() ? "" : " (did you mean " + hint + "?)"),
          column);
    }
  }
  if (!m.read_only_set) m.read_only = m.type == "bind";
  // An empty or relative target is resolved against the working directory
  // when the step runs (BuildKit does the same: `--mount=ro` binds the
  // context at WORKDIR).
  if (m.type == "cache" && m.sharing.empty()) m.sharing = "shared";
  return m;
}

}  // namespace stagefarm::dockerfile::internal
