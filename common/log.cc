#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/json.h"
#include "nlohmann/json.hpp"

namespace stagefarm {
namespace {

struct Config {
  std::string program = "stagefarm";
  LogFormat format = LogFormat::kText;
};

Config& Cfg() {
  static auto* c = new Config();
  return *c;
}
absl::Mutex& Mu() {
  static auto* mu = new absl::Mutex();
  return *mu;
}

std::string Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                           now.time_since_epoch())
                           .count() %
                       1000);
  std::tm tm;
  gmtime_r(&t, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

// A text field's value, quoted when it has spaces or quotes.
std::string TextValue(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \"=\t\n") == std::string::npos) return v;
  return json::Dump(nlohmann::json(v));
}

}  // namespace

bool InitLog(const std::string& program, absl::string_view format) {
  absl::MutexLock lock(&Mu());
  Cfg().program = program;
  if (format == "json") {
    Cfg().format = LogFormat::kJson;
  } else if (format == "text" || format.empty()) {
    Cfg().format = LogFormat::kText;
  } else {
    return false;
  }
  return true;
}

void Log(const char* level, absl::string_view message,
         std::initializer_list<LogField> fields) {
  std::string line;
  absl::MutexLock lock(&Mu());
  const Config& c = Cfg();
  if (c.format == LogFormat::kJson) {
    nlohmann::ordered_json j;
    j["time"] = Now();
    j["level"] = level;
    j["program"] = c.program;
    j["msg"] = std::string(message);
    for (const auto& [k, v] : fields) {
      if (!v.empty()) j[k] = v;
    }
    line = json::Dump(j);
  } else {
    line = absl::StrCat(Now(), " ", absl::AsciiStrToUpper(level), " ",
                        c.program, ": ", message);
    for (const auto& [k, v] : fields) {
      if (!v.empty()) absl::StrAppend(&line, " ", k, "=", TextValue(v));
    }
  }
  line += "\n";
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

}  // namespace stagefarm
