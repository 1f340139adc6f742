// The daemons' logs: one line per event on stderr, with the ids an operator
// searches by (build, stage, worker, tenant) as fields. Text by default:
//   2026-11-28T14:00:00.123Z INFO stagefarm-scheduler: stage-started build=ab12
//   stage=one worker=w1
// or, with --log-format=json, one JSON object per line:
//   {"time":"...","level":"info","program":"stagefarm-scheduler","msg":"stage-started","build":"ab12",...}
// Thread-safe (lines never interleave).
#ifndef STAGEFARM_COMMON_LOG_H_
#define STAGEFARM_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace stagefarm {

enum class LogFormat { kText, kJson };

// Names the program and picks the format ("text" or "json"); false for an
// unknown format.
bool InitLog(const std::string& program, absl::string_view format);

using LogField = std::pair<const char*, std::string>;
void Log(const char* level, absl::string_view message,
         std::initializer_list<LogField> fields = {});
inline void LogInfo(absl::string_view message,
                    std::initializer_list<LogField> fields = {}) {
  Log("info", message, fields);
}
inline void LogError(absl::string_view message,
                     std::initializer_list<LogField> fields = {}) {
  Log("error", message, fields);
}

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_LOG_H_
