#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "cli/farm_client.h"
#include "cli/interrupt.h"
#include "cli/local_commands.h"
#include "cli/local_history.h"
#include "cli/progress.h"
#include "farmapi/events.h"
#include "webui/web_view.h"

namespace stagefarm::cli {
namespace {

struct FarmFlags {
  std::string farm_server, farm_build;
  int logs_step = 0;
  std::string logs_stage, logs_blob;
  bool logs_full = false;
  std::string trace_output;
  std::string ui_listen = "127.0.0.1:8480";
  std::string cluster_state;
  int cluster_workers = 2;
};

// `stagefarm logs BUILD --step N [--stage S] [--full]`: one step's output,
// as the live log has it, or whole (the kept blob) with --full. Raw bytes
// to stdout, so a redirect gets exactly what the step printed.
int StepLogCommand(LocalOptions local, const std::string& server,
                   const std::string& build, const std::string& stage, int step,
                   bool full) {
  struct Seen {
    std::string text;
    std::optional<Digest> full_log;
  };
  std::map<std::string, Seen> seen;
  absl::Status s = WatchBuild(server, build, [&](const engine::BuildEvent& ev) {
    if (ev.step != step || (!stage.empty() && ev.stage != stage)) return;
    if (ev.kind == engine::BuildEvent::Kind::kStepStarted) {
      seen[ev.stage];
    } else if (ev.kind == engine::BuildEvent::Kind::kLog) {
      seen[ev.stage].text += ev.text;
    } else if (ev.full_log) {
      seen[ev.stage].full_log = ev.full_log;
    }
  });
  if (seen.empty()) {
    if (!s.ok() && !absl::IsFailedPrecondition(s)) return Fail(s);
    return Fail(absl::NotFoundError(
        absl::StrCat("build ", build, ": no step ", step,
                     stage.empty() ? "" : absl::StrCat(" in stage ", stage),
                     " ran (cached steps print nothing)")));
  }
  if (seen.size() > 1) {
    std::vector<std::string> names;
    for (const auto& [name, unused] : seen) names.push_back(name);
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "build ", build, ": several stages have a step ", step,
        "; pass --stage with one of: ", absl::StrJoin(names, ", "))));
  }
  const Seen& one = seen.begin()->second;
  if (full && one.full_log) {
    auto instance = BuildInstance(server, build);
    if (!instance.ok()) return Fail(instance.status());
    local.server = server;
    local.cas_instance = *instance;
    if (local.cas_address.empty()) {
      auto cas = FarmCas(server);
      if (!cas.ok()) return Fail(cas.status());
      local.cas_address = *cas;
    }
    return LogBlobCommand(local, *one.full_log);
  }
  std::fwrite(one.text.data(), 1, one.text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

// builds ls, builds trace and logs without a farm: this machine's history
// (cli/local_history.h).
int HistoryCommand(FarmFlags* f, const LocalOptions& local, CLI::App* builds_ls,
                   CLI::App* builds_trace, CLI::App* logs, CLI::App* cancel) {
  const std::string home = local.home.empty() ? DefaultHome() : local.home;
  LocalHistory history(home, local);
  if (builds_ls->parsed()) {
    size_t total = 0;
    std::cout << BuildsTable(history.Summaries(nullptr, {}, 0, 0, &total));
    return 0;
  }
  if (cancel->parsed()) {
    return Fail(absl::InvalidArgumentError(
        "cancel: a build on this machine stops with Ctrl-C in its terminal; "
        "a farm's build needs --server HOST:PORT (or STAGEFARM_SERVER)"));
  }
  absl::StatusOr<v1::BuildRecord> record =
      history.Record(nullptr, f->farm_build);
  if (!record.ok()) return Fail(record.status());
  if (builds_trace->parsed()) {
    absl::Status s = WriteTrace(*record, f->trace_output);
    return s.ok() ? 0 : Fail(s);
  }
  (void)logs;
  std::string text;
  std::optional<Digest> full_log;
  bool seen = false;
  auto progress = MakeProgress("plain", stderr);
  for (const v1::Event& e : record->events()) {
    engine::BuildEvent ev = farmapi::FromWire(e);
    if (f->logs_step == 0) {
      progress->OnEvent(ev);
      continue;
    }
    if (ev.step != f->logs_step ||
        (!f->logs_stage.empty() && ev.stage != f->logs_stage)) {
      continue;
    }
    seen = true;
    if (ev.kind == engine::BuildEvent::Kind::kLog) text += ev.text;
    if (ev.full_log) full_log = ev.full_log;
  }
  if (f->logs_step == 0) {
    progress->Finish();
    const v1::StoredBuild& b = record->build();
    if (b.finished() && b.code() != 0) {
      return Fail(
          absl::Status(static_cast<absl::StatusCode>(b.code()), b.error()));
    }
    return 0;
  }
  if (!seen) {
    return Fail(absl::NotFoundError(absl::StrCat(
        "build ", f->farm_build, ": no step ", f->logs_step, " ran")));
  }
  if (f->logs_full && full_log) return LogBlobCommand(local, *full_log);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

// builds ls, logs and cancel: the farm from --server or STAGEFARM_SERVER.
int FarmCommand(FarmFlags* f, LocalOptions* local, CLI::App* builds_ls,
                CLI::App* builds_trace, CLI::App* logs, CLI::App* cancel) {
  if (logs->parsed() && !f->logs_blob.empty()) {
    absl::StatusOr<Digest> d = ParseDigestArg(f->logs_blob);
    if (!d.ok()) return Fail(d.status());
    if (!f->farm_server.empty()) local->server = f->farm_server;
    if (local->cas_address.empty() && !local->server.empty()) {
      auto cas = FarmCas(local->server);
      if (!cas.ok()) return Fail(cas.status());
      local->cas_address = *cas;
    }
    return LogBlobCommand(*local, *d);
  }
  if (logs->parsed() && f->farm_build.empty()) {
    return Fail(absl::InvalidArgumentError(
        "logs: pass a BUILD id (or --blob HASH/SIZE)"));
  }
  if (logs->parsed() && f->logs_full && f->logs_step == 0) {
    return Fail(absl::InvalidArgumentError("logs: --full needs --step N"));
  }
  if (f->farm_server.empty()) {
    if (const char* env = std::getenv("STAGEFARM_SERVER")) f->farm_server = env;
  }
  if (f->farm_server.empty()) {
    return HistoryCommand(f, *local, builds_ls, builds_trace, logs, cancel);
  }
  if (builds_ls->parsed()) {
    auto text = ListBuildsText(f->farm_server);
    if (!text.ok()) return Fail(text.status());
    std::cout << *text;
    return 0;
  }
  if (builds_trace->parsed()) {
    absl::StatusOr<v1::BuildRecord> record =
        GetBuildRecord(f->farm_server, f->farm_build);
    if (!record.ok()) return Fail(record.status());
    absl::Status s = WriteTrace(*record, f->trace_output);
    return s.ok() ? 0 : Fail(s);
  }
  if (cancel->parsed()) {
    absl::Status s = CancelBuild(f->farm_server, f->farm_build);
    if (!s.ok()) return Fail(s);
    std::cerr << "cancelled " << f->farm_build << "\n";
    return 0;
  }
  if (f->logs_step > 0) {
    return StepLogCommand(*local, f->farm_server, f->farm_build, f->logs_stage,
                          f->logs_step, f->logs_full);
  }
  auto progress = MakeProgress("plain", stderr);
  absl::Status s =
      WatchBuild(f->farm_server, f->farm_build,
                 [&](const engine::BuildEvent& ev) { progress->OnEvent(ev); });
  progress->Finish();
  if (!s.ok()) return Fail(s);
  return 0;
}

// `stagefarm ui`: the web view of this machine's builds (its history),
// until Ctrl-C.
int UiCommand(const FarmFlags& f, const LocalOptions& local) {
  const std::string home = local.home.empty() ? DefaultHome() : local.home;
  LocalHistory history(home, local);
  webui::WebViewOptions options;
  options.listen = f.ui_listen;
  options.threads = 16;
  absl::StatusOr<std::unique_ptr<webui::WebView>> web =
      webui::WebView::Start(options, &history);
  if (!web.ok()) return Fail(web.status());
  InstallSignalHandlers();
  std::cout << "stagefarm ui: the builds of " << home << " at " << (*web)->url()
            << " (Ctrl-C stops)" << std::endl;
  while (!Cancelled().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  (*web)->Stop();
  return 0;
}

}  // namespace

void AddFarmCommands(CLI::App* app, LocalOptions* local, Commands* out) {
  auto f = std::make_shared<FarmFlags>();
  auto server_flag = [f](CLI::App* sub) {
    sub->add_option("--server", f->farm_server,
                    "the farm's scheduler HOST:PORT (or STAGEFARM_SERVER)");
  };
  CLI::App* builds = app->add_subcommand("builds", "builds on a farm");
  builds->require_subcommand(1);
  server_flag(builds);
  builds->fallthrough();
  CLI::App* builds_ls =
      builds->add_subcommand("ls", "running and recent builds, newest first");
  CLI::App* builds_trace = builds->add_subcommand(
      "trace",
      "a build's timeline as Chrome trace-event JSON (Perfetto, "
      "chrome://tracing): a track per worker slot, a slice per stage and "
      "step");
  builds_trace->add_option("build", f->farm_build, "BUILD id")->required();
  builds_trace->add_option("-o,--output", f->trace_output,
                           "the file to write (default: standard output)");
  CLI::App* logs = app->add_subcommand(
      "logs",
      "a farm build's progress, followed to its end; one step's output; a "
      "step's whole output kept after its live log was clipped");
  logs->add_option("build", f->farm_build, "BUILD id");
  logs->add_option("--step", f->logs_step,
                   "only this step's output (its number within its stage)")
      ->check(CLI::Range(1, 1 << 20));
  logs->add_option("--stage", f->logs_stage,
                   "the stage of --step, as progress names it (needed when "
                   "several stages have that step)");
  logs->add_flag("--full", f->logs_full,
                 "with --step: all of the step's output, also what the live "
                 "log clipped");
  logs->add_option("--blob", f->logs_blob,
                   "print a kept output, HASH/SIZE as a clipped step's note "
                   "names it (from the local store, or --cas / --server)");
  logs->add_option("--cas", local->cas_address, "the CAS holding --blob");
  logs->add_option("--instance", local->cas_instance,
                   "the CAS instance of --blob");
  server_flag(logs);
  CLI::App* cancel = app->add_subcommand("cancel", "cancel a farm build");
  cancel->add_option("build", f->farm_build, "BUILD id")->required();
  server_flag(cancel);

  CLI::App* ui = app->add_subcommand(
      "ui",
      "a web view of this machine's builds (their history, live), as "
      "stagefarm-scheduler --http-listen serves a farm's");
  ui->add_option("--listen", f->ui_listen,
                 "HOST:PORT to serve on (port 0: any; default "
                 "127.0.0.1:8480)");
  out->push_back({ui, [f, local] { return UiCommand(*f, *local); }});

  CLI::App* cluster = app->add_subcommand(
      "cluster", "a farm on this machine: CAS, scheduler and workers");
  cluster->require_subcommand(1);
  cluster->add_option("--state", f->cluster_state,
                      "directory for the processes' state and logs (default "
                      "$STAGEFARM_HOME/cluster)");
  cluster->fallthrough();
  CLI::App* cluster_up =
      cluster->add_subcommand("up", "start a CAS, a scheduler and workers");
  cluster_up->add_option("--workers", f->cluster_workers, "how many workers")
      ->check(CLI::Range(1, 64));
  CLI::App* cluster_down =
      cluster->add_subcommand("down", "stop what `cluster up` started");

  for (CLI::App* sub : {builds_ls, builds_trace, logs, cancel}) {
    out->push_back({sub, [f, local, builds_ls, builds_trace, logs, cancel] {
                      return FarmCommand(f.get(), local, builds_ls,
                                         builds_trace, logs, cancel);
                    }});
  }
  auto cluster_run = [f, cluster_up] {
    std::string state = f->cluster_state.empty() ? DefaultHome() + "/cluster"
                                                 : f->cluster_state;
    if (!cluster_up->parsed()) return ClusterDown(state);
    return ClusterUp(state, f->cluster_workers);
  };
  out->push_back({cluster_up, cluster_run});
  out->push_back({cluster_down, cluster_run});
}

}  // namespace stagefarm::cli
