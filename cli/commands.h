// The groups of `stagefarm` commands, one file each: cas_commands.cc (cas
// put|get|has|stats|push-context), inspect_commands.cc (parse, plan,
// health, version), image_commands.cc (build, image ..., pull, push, run;
// their work is in local_commands.cc), farm_commands.cc (builds ls, logs,
// cancel, cluster up|down), system_commands.cc (system df, prune). Each adds
// its subcommands and flags to the command line and says what runs when one of
// them is given; main.cc parses once, applies the environment, and runs it.
#ifndef STAGEFARM_CLI_COMMANDS_H_
#define STAGEFARM_CLI_COMMANDS_H_

#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/exit_status.h"
#include "cli/local.h"

namespace stagefarm::cli {

struct Command {
  CLI::App* app;             // the subcommand
  std::function<int()> run;  // its work; returns the exit status
  // It works on images: without --cas, a --server farm's CAS is looked up
  // first.
  bool uses_store = false;
  // It may run steps or change $STAGEFARM_HOME's snapshots (so may every
  // command that uses the store): run by an ordinary user without
  // --server, it runs in a user namespace of its own
  // (executor/rootless.h).
  bool local_engine = false;
};
using Commands = std::vector<Command>;

// --cas, --instance and --server on a command that uses the store (the
// local one by default); image_commands.cc.
void AddStoreFlags(CLI::App* sub, LocalOptions* local);

void AddCasCommands(CLI::App* app, Commands* out);
void AddInspectCommands(CLI::App* app, Commands* out);
void AddImageCommands(CLI::App* app, LocalOptions* local, Commands* out);
void AddFarmCommands(CLI::App* app, LocalOptions* local, Commands* out);
void AddSystemCommands(CLI::App* app, LocalOptions* local, Commands* out);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_COMMANDS_H_
