#include "executor/memory_kill.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/byte_size.h"
#include "common/fs_util.h"
#include "common/json.h"

namespace stagefarm::executor {
namespace {

// The value of the line "`key` N" in a counters file; -1 when absent.
int64_t Counter(absl::string_view counters, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(counters, '\n')) {
    std::vector<absl::string_view> words =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t n = 0;
    if (words.size() == 2 && words[0] == key &&
        absl::SimpleAtoi(words[1], &n)) {
      return n;
    }
  }
  return -1;
}

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  return text.ok() ? *text : std::string();
}

}  // namespace

int64_t OomKillCount(absl::string_view counters) {
  return Counter(counters, "oom_kill");
}

bool KilledForMemory(absl::string_view state_json, int exit_code) {
  absl::StatusOr<nlohmann::json> state = json::Parse(state_json, "runc state");
  if (!state.ok()) return false;
  absl::StatusOr<const nlohmann::json*> paths =
      json::OptionalObject(*state, "cgroup_paths", "runc state");
  if (!paths.ok() || *paths == nullptr || !(*paths)->is_object()) {
    return false;
  }
  for (auto it = (*paths)->begin(); it != (*paths)->end(); ++it) {
    if (!it.value().is_string()) continue;
    const std::string dir = it.value().get<std::string>();
    if (it.key().empty()) {
      // The unified (v2) hierarchy: memory.events exists where the memory
      // controller is enabled.
      if (OomKillCount(ReadOrEmpty(dir + "/memory.events")) > 0) return true;
    } else if (it.key() == "memory") {
      int64_t kills = OomKillCount(ReadOrEmpty(dir + "/memory.oom_control"));
      if (kills > 0) return true;
      if (kills < 0 && exit_code == 137) {
        int64_t failcnt = 0;
        std::string text = ReadOrEmpty(dir + "/memory.failcnt");
        if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &failcnt) &&
            failcnt > 0) {
          return true;
        }
      }
    }
  }
  return false;
}

std::string DescribeExit(const ExecResult& result) {
  std::string out = absl::StrCat("exit code: ", result.exit_code);
  if (result.killed_for_memory) {
    absl::StrAppend(&out, ": killed by the kernel: out of memory");
    if (result.memory_limit_bytes > 0) {
      absl::StrAppend(&out, " (the step's memory limit is ",
                      FormatBinaryBytes(result.memory_limit_bytes), ")");
    }
  }
  return out;
}

}  // namespace stagefarm::executor
