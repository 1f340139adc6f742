// Typed Dockerfile instructions: the parser's nodes checked and turned into
// structs (flags validated, JSON vs shell form, key/value pairs split).
// Variable expansion happens later, per stage, where ARG/ENV scope is known;
// values here are as written. Errors are INVALID_ARGUMENT with
// "FILE:LINE:COL: message". Pure; thread-compatible.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_INSTRUCTIONS_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_INSTRUCTIONS_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/parser.h"

namespace stagefarm::dockerfile {

struct KeyValue {
  std::string key;
  std::string value;
};

// A command in shell form (one string, run by the stage's SHELL) or exec form.
struct Command {
  std::vector<std::string> args;
  bool shell_form = true;
};

struct Mount {
  std::string type = "bind";  // bind, cache, tmpfs, secret, ssh
  std::string target;         // empty or relative: under the working directory
  std::string source;
  std::string from;  // stage, index or image
  std::string id;
  std::string sharing;  // shared, private, locked
  std::string mode, uid, gid, size, env;
  bool read_only = true;
  bool read_only_set = false;
  bool required = false;
  int column = 0;
};

struct FromInst {
  std::string image;  // as written
  std::string name;   // AS name, as written ("" if none)
  std::string platform;
};
struct RunInst {
  Command command;
  std::vector<Mount> mounts;
  std::string network;   // default, none, host
  std::string security;  // sandbox, insecure
};
struct CmdInst {
  Command command;
};
struct EntrypointInst {
  Command command;
};
struct ShellInst {
  std::vector<std::string> shell;
};
struct CopyInst {
  bool is_add = false;
  std::vector<std::string> sources;
  std::string dest;
  std::string from;
  std::string chown;
  std::string chmod;
  bool link = false;
  bool parents = false;
  std::vector<std::string> excludes;
  std::string checksum;              // ADD only
  std::optional<bool> keep_git_dir;  // ADD only
  std::optional<bool> unpack;        // ADD only
  int from_column = 0;
};
struct EnvInst {
  std::vector<KeyValue> pairs;
  bool legacy = false;
};
struct LabelInst {
  std::vector<KeyValue> pairs;
  bool legacy = false;
};
struct ArgInst {
  struct Arg {
    std::string name;
    std::optional<std::string> default_value;
  };
  std::vector<Arg> args;
};
struct ExposeInst {
  std::vector<std::string> ports;
};
struct VolumeInst {
  std::vector<std::string> paths;
};
struct UserInst {
  std::string user;
};
struct WorkdirInst {
  std::string path;
};
struct StopSignalInst {
  std::string signal;
};
struct MaintainerInst {
  std::string name;
};
struct HealthcheckInst {
  bool none = false;
  Command command;  // CMD form
  std::string interval, timeout, start_period, start_interval;
  std::optional<int> retries;
};
struct Instruction;
struct OnbuildInst {
  std::string expression;
};

struct Instruction {
  std::string keyword;  // lower case
  int line = 0;
  int end_line = 0;
  std::string original;
  std::vector<Heredoc> heredocs;
  std::vector<std::string> comments;
  std::variant<FromInst, RunInst, CmdInst, EntrypointInst, ShellInst, CopyInst,
               EnvInst, LabelInst, ArgInst, ExposeInst, VolumeInst, UserInst,
               WorkdirInst, StopSignalInst, MaintainerInst, HealthcheckInst,
               OnbuildInst>
      value;
};

absl::StatusOr<Instruction> ToInstruction(const Node& node,
                                          absl::string_view filename);

// Every instruction of a parsed file, in order. The rvalue overload moves
// the nodes' text instead of copying it.
absl::StatusOr<std::vector<Instruction>> ToInstructions(
    const ParsedDockerfile& parsed, absl::string_view filename);
absl::StatusOr<std::vector<Instruction>> ToInstructions(
    ParsedDockerfile&& parsed, absl::string_view filename);

absl::string_view TrimSpaceAscii(absl::string_view s);

// Nanoseconds of a Go-style duration ("1m30s", "500ms"); 0 if invalid.
double GoDurationNanos(absl::string_view s);

// The closest of `candidates` to `word` by edit distance, or "" when none is
// close (for "did you mean" hints).
std::string Suggest(absl::string_view word,
                    const std::vector<std::string>& candidates);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_INSTRUCTIONS_H_
