// scheduler_bench: a running stagefarm-scheduler under load from simulated
// clients and workers (scheduler/sim.h), over TCP. First every client submits
// its build and the benchmark waits until the scheduler lists them all as
// running at once; then the simulated workers start and drain the stages.
// Prints the concurrent builds reached, the stage dispatch rate (stages
// leased and reported done per second) and the build time clients saw
// (from submission; with --work-ms mostly the simulated work). With --rounds
// the builds of earlier rounds stay kept (--keep-builds on the scheduler) while
// the last is timed; with --log-lines each stage reports that many lines of
// output.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/sim.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// STAGES-1 independent stages and a final one copying from each.
std::string Dockerfile(int stages, int salt) {
  std::string df;
  for (int i = 0; i + 1 < stages; ++i) {
    absl::StrAppend(&df, "FROM scratch AS s", i, "\nCOPY f", salt, " /f", i,
                    "\n");
  }
  absl::StrAppend(&df, "FROM scratch\n");
  for (int i = 0; i + 1 < stages; ++i) {
    absl::StrAppend(&df, "COPY --from=s", i, " /f", i, " /f", i, "\n");
  }
  return df;
}

int Running(stagefarm::v1::Scheduler::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  stagefarm::v1::ListBuildsRequest req;
  req.set_state("running");
  stagefarm::v1::ListBuildsResponse resp;
  if (!stub->ListBuilds(&ctx, req, &resp).ok()) return -1;
  int n = 0;
  for (const auto& b : resp.builds()) n += b.state() == "running" ? 1 : 0;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace stagefarm;
  CLI::App app{"scheduler_bench: load on a running stagefarm-scheduler"};
  std::string server;
  int builds = 1000, stages = 4, workers = 8, rounds = 1, log_lines = 0,
      work_ms = 0;
  app.add_option("--scheduler", server, "HOST:PORT")->required();
  app.add_option("--builds", builds, "builds submitted at once")
      ->check(CLI::Range(1, 100000));
  app.add_option("--stages", stages, "stages per build (>= 2)")
      ->check(CLI::Range(2, 65));
  app.add_option("--workers", workers, "simulated worker threads")
      ->check(CLI::Range(1, 1024));
  app.add_option("--rounds", rounds,
                 "times the builds are submitted and drained; the figures "
                 "are the last round's, with every earlier build kept")
      ->check(CLI::Range(1, 1000));
  app.add_option("--log-lines", log_lines,
                 "lines of output each stage reports, one event a line")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--work-ms", work_ms,
                 "time a simulated worker takes for a stage (its slot is "
                 "busy meanwhile)")
      ->check(CLI::Range(0, 600000));
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Clients share a few connections, as many processes would have their own.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments a = args;
    a.SetInt("stagefarm.bench.channel", i);
    channels.push_back(grpc::CreateCustomChannel(
        server, grpc::InsecureChannelCredentials(), a));
  }
  auto control = v1::Scheduler::NewStub(channels[0]);

  std::atomic<int> ok{0}, failed{0};
  std::vector<double> seconds(builds);
  int running = 0;
  double submit_seconds = 0, drain = 0;
  int64_t dispatched = 0;
  for (int round = 0; round < rounds; ++round) {
    ok = 0;
    failed = 0;
    std::vector<std::thread> clients;
    auto submit_start = Clock::now();
    for (int i = 0; i < builds; ++i) {
      clients.emplace_back([&, i] {
        auto stub = v1::Scheduler::NewStub(channels[i % channels.size()]);
        auto t = Clock::now();
        scheduler::sim::Outcome o = scheduler::sim::SubmitAndWait(
            stub.get(), scheduler::sim::Spec(Dockerfile(stages, i)));
        seconds[i] = Seconds(Clock::now() - t);
        if (o.status.ok() && o.last.finished() && o.last.code() == 0) {
          ++ok;
        } else {
          ++failed;
          if (failed <= 3) {
            std::fprintf(stderr, "build %d: %s %s\n", i,
                         o.status.error_message().c_str(),
                         o.last.error().c_str());
          }
        }
      });
    }
    running = 0;
    auto wait_until = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < wait_until) {
      running = Running(control.get());
      if (running >= builds) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    submit_seconds = Seconds(Clock::now() - submit_start);

    auto t0 = Clock::now();
    scheduler::sim::Workers sim(channels[1], "sim", workers,
                                std::chrono::milliseconds(work_ms), log_lines);
    for (auto& c : clients) c.join();
    drain = Seconds(Clock::now() - t0);
    sim.Stop();
    dispatched = sim.done();
    if (failed > 0 || running < builds) break;
  }
  if (rounds > 1) {
    std::printf("rounds: %d of %d builds (the figures are the last's)\n",
                rounds, builds);
  }
  std::printf(
      "concurrent builds: %d of %d running at once (submitted in %.2f s)\n",
      running, builds, submit_seconds);
  std::printf(
      "stages dispatched: %lld in %.2f s = %.0f dispatches/s (%d "
      "simulated workers)\n",
      static_cast<long long>(dispatched), drain, dispatched / drain, workers);
  std::sort(seconds.begin(), seconds.end());
  std::printf("build time: median %.3f s, longest %.3f s (as clients saw it)\n",
              seconds[seconds.size() / 2], seconds.back());
  std::printf("builds: %d succeeded, %d failed\n", ok.load(), failed.load());
  return failed == 0 && running >= builds ? 0 : 1;
}
