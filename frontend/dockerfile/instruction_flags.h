// How instructions' flags and errors are read (frontend/dockerfile internal):
// Locator (file:line:column errors), the flag table and parser of an
// instruction's --flags, and RUN --mount specs. Not part of the API.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_INSTRUCTION_FLAGS_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_INSTRUCTION_FLAGS_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/instructions.h"

namespace stagefarm::dockerfile::internal {

// Where errors point: the file, the instruction's first line, and a column.
class Locator {
 public:
  Locator(absl::string_view file, const Node& node)
      : file_(file), node_(node) {}

  absl::Status Error(absl::string_view message, int column = 0) const {
    if (column <= 0) column = KeywordColumn();
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ":", node_.start_line, ":", column, ": ", message));
  }
  // 1-based column of `text` in the instruction's first line, or of the
  // keyword when it is not there.
  int ColumnOf(absl::string_view text) const {
    absl::string_view first = node_.original;
    size_t nl = first.find('\n');
    if (nl != absl::string_view::npos) first = first.substr(0, nl);
    size_t pos = first.find(text);
    return pos == absl::string_view::npos ? KeywordColumn()
                                          : static_cast<int>(pos) + 1;
  }
  int KeywordColumn() const {
    size_t i = 0;
    while (i < node_.original.size() &&
           (node_.original[i] == ' ' || node_.original[i] == '\t')) {
      ++i;
    }
    return static_cast<int>(i) + 1;
  }

 private:
  absl::string_view file_;
  const Node& node_;
};

struct FlagSpec {
  enum Kind { kString, kBool, kStrings } kind;
};

// The flags an instruction accepts; a fixed table, no allocation.
class FlagTable {
 public:
  FlagTable(std::initializer_list<std::pair<absl::string_view, FlagSpec::Kind>>
                list) {
    for (const auto& entry : list) {
      if (n_ < kMax) entries_[n_++] = entry;
    }
  }
  void Add(absl::string_view name, FlagSpec::Kind kind) {
    if (n_ < kMax) entries_[n_++] = {name, kind};
  }
  const std::pair<absl::string_view, FlagSpec::Kind>* Find(
      absl::string_view name) const {
    for (int i = 0; i < n_; ++i) {
      if (entries_[i].first == name) return &entries_[i];
    }
    return nullptr;
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    for (int i = 0; i < n_; ++i) out.emplace_back(entries_[i].first);
    return out;
  }

 private:
  static constexpr int kMax = 10;
  std::pair<absl::string_view, FlagSpec::Kind> entries_[kMax];
  int n_ = 0;
};

// Parses "--name[=value]" flags against the instruction's allowed set.
class Flags {
 public:
  Flags(const Node& node, const Locator& at, FlagTable allowed)
      : node_(node), at_(at), allowed_(allowed) {}

  absl::Status Parse() {
    if (node_.flags.empty()) return absl::OkStatus();
    for (const std::string& flag : node_.flags) {
      std::string body = flag.substr(2);
      size_t eq = body.find('=');
      std::string name = body.substr(0, eq);
      std::optional<std::string> value;
      if (eq != std::string::npos) value = body.substr(eq + 1);
      const auto* it = allowed_.Find(name);
      int column = at_.ColumnOf("--" + name);
      if (it == nullptr) {
        std::string hint = Suggest(name, allowed_.Names());
        return at_.Error(
            absl::StrCat("unknown flag: --", name,
                         hint.empty() ? "" : " (did you mean " + hint + "?)"),
            column);
      }
      switch (it->second) {
        case FlagSpec::kBool: {
          bool b = true;
          if (value) {
            std::string v = absl::AsciiStrToLower(*value);
            if (v == "true" || v == "1") {
              b = true;
            } else if (v == "false" || v == "0") {
              b = false;
            } else {
              return at_.Error(
                  absl::StrCat("expecting boolean value for flag --", name,
                               ", not: ", *value),
                  column);
            }
          }
          if (bools_.count(name)) {
            return at_.Error(absl::StrCat("duplicate flag specified: --", name),
                             column);
          }
          bools_[name] = b;
          break;
        }
        case FlagSpec::kString:
          if (!value) {
            return at_.Error(absl::StrCat("missing a value on flag: --", name),
                             column);
          }
          if (strings_.count(name)) {
            return at_.Error(absl::StrCat("duplicate flag specified: --", name),
                             column);
          }
          strings_[name] = {*value, column};
          break;
        case FlagSpec::kStrings:
          if (!value) {
            return at_.Error(absl::StrCat("missing a value on flag: --", name),
                             column);
          }
          lists_[name].push_back({*value, column});
          break;
      }
    }
    return absl::OkStatus();
  }

  std::string String(const std::string& name) const {
    auto it = strings_.find(name);
    return it == strings_.end() ? "" : it->second.first;
  }
  int Column(const std::string& name) const {
    auto it = strings_.find(name);
    return it == strings_.end() ? 0 : it->second.second;
  }
  std::optional<bool> Bool(const std::string& name) const {
    auto it = bools_.find(name);
    if (it == bools_.end()) return std::nullopt;
    return it->second;
  }
  const std::vector<std::pair<std::string, int>>& List(
      const std::string& name) {
    return lists_[name];
  }

 private:
  const Node& node_;
  const Locator& at_;
  FlagTable allowed_;
  std::map<std::string, std::pair<std::string, int>> strings_;
  std::map<std::string, bool> bools_;
  std::map<std::string, std::vector<std::pair<std::string, int>>> lists_;
};

// A RUN --mount value ("type=cache,target=/x,..."); errors point at
// `column`.
absl::StatusOr<Mount> ParseMount(const std::string& spec, int column,
                                 const Locator& at);

}  // namespace stagefarm::dockerfile::internal

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_INSTRUCTION_FLAGS_H_
