// stagefarm: the command-line client. The commands live in their groups
// (cli/commands.h); this parses the command line once, applies the
// environment (TLS files, STAGEFARM_CAS, STAGEFARM_SERVER) and runs the
// command given.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "cli/commands.h"
#include "cli/farm_client.h"
#include "common/tls.h"
#include "executor/rootless.h"

namespace {

int Main(int argc, char** argv) {
  using namespace stagefarm;
  CLI::App app{"stagefarm: a distributed build farm for Dockerfiles"};
  app.require_subcommand(1);
  cli::LocalOptions local;
  cli::Commands commands;
  cli::AddCasCommands(&app, &commands);
  cli::AddInspectCommands(&app, &commands);
  cli::AddImageCommands(&app, &local, &commands);
  cli::AddFarmCommands(&app, &local, &commands);
  cli::AddSystemCommands(&app, &local, &commands);
  CLI11_PARSE(app, argc, argv);
  // Farm connections use TLS when STAGEFARM_TLS_* name the files.
  if (absl::Status t = ConfigureTls(TlsFiles{}, /*server=*/false); !t.ok()) {
    std::cerr << "error: " << t.message() << "\n";
    return cli::kUsageError;
  }
  if (local.cas_address.empty()) {
    if (const char* env = std::getenv("STAGEFARM_CAS"); env != nullptr) {
      local.cas_address = env;
    }
  }
  if (local.server.empty()) {
    if (const char* env = std::getenv("STAGEFARM_SERVER"); env != nullptr) {
      local.server = env;
    }
  }
  for (const cli::Command& c : commands) {
    if (!c.app->parsed()) continue;
    if ((c.uses_store || c.local_engine) && local.server.empty()) {
      // An ordinary user's engine runs in a user namespace of its own.
      if (absl::Status s = executor::EnterUserNamespace(argv); !s.ok()) {
        std::cerr << "error: " << s.message() << "\n";
        return cli::kFailure;
      }
    }
    if (c.uses_store && !local.server.empty() && local.cas_address.empty()) {
      // Only the scheduler given: its CAS holds the farm's images.
      auto cas = cli::FarmCas(local.server);
      if (!cas.ok()) {
        std::cerr << "error: " << cas.status().message() << "\n";
        return cli::kFailure;
      }
      local.cas_address = *cas;
    }
    return c.run();
  }
  return cli::kUsageError;
}

}  // namespace

// No input may abort the client: what a library throws past a command is
// reported as an error, with the failure's exit code.
int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "error: internal error: an unknown exception\n";
  }
  return stagefarm::cli::kFailure;
}
