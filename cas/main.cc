// stagefarm-cas: the content-addressable store server (REAPI v2).
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_split.h"
#include "cas/cas_server.h"
#include "common/daemon.h"
#include "common/log.h"

namespace {

void RegisterCasMetrics(stagefarm::Metrics* m,
                        stagefarm::RocksDbBlobStore* store) {
  using stagefarm::StoreStats;
  auto stat = [store](int64_t StoreStats::*field) {
    return [store, field]() -> double {
      return static_cast<double>(store->Stats().*field);
    };
  };
  m->Gauge("stagefarm_cas_stored_bytes", "Bytes of blobs stored", {},
           stat(&StoreStats::stored_bytes));
  m->Gauge("stagefarm_cas_max_bytes",
           "Bytes kept before the least recently used blobs are evicted", {},
           stat(&StoreStats::max_bytes));
  m->Gauge("stagefarm_cas_blobs", "Blobs stored", {},
           stat(&StoreStats::blob_count));
  m->Gauge("stagefarm_cas_action_cache_entries", "Action cache entries", {},
           stat(&StoreStats::action_cache_entries));
  m->Gauge("stagefarm_cas_uploads_in_progress", "Resumable uploads open", {},
           stat(&StoreStats::uploads_in_progress));
  m->Counter("stagefarm_cas_evicted_bytes_total", "Bytes evicted", {},
             stat(&StoreStats::evicted_bytes));
  m->Counter("stagefarm_cas_evicted_blobs_total", "Blobs evicted", {},
             stat(&StoreStats::evicted_blobs));
  m->Counter("stagefarm_cas_disk_full_errors_total",
             "Writes refused because the CAS's disk was full", {},
             stat(&StoreStats::disk_full_errors));
  auto traffic = [](std::atomic<int64_t> stagefarm::CasTraffic::*field) {
    return [field]() -> double {
      return static_cast<double>((stagefarm::Traffic().*field).load());
    };
  };
  m->Counter("stagefarm_cas_received_bytes_total", "Blob bytes uploaded", {},
             traffic(&stagefarm::CasTraffic::bytes_received));
  m->Counter("stagefarm_cas_sent_bytes_total", "Blob bytes downloaded", {},
             traffic(&stagefarm::CasTraffic::bytes_sent));
  const char* lookups = "Action cache lookups, by result";
  m->Counter("stagefarm_cas_action_cache_lookups_total", lookups,
             {{"result", "hit"}}, traffic(&stagefarm::CasTraffic::action_hits));
  m->Counter("stagefarm_cas_action_cache_lookups_total", lookups,
             {{"result", "miss"}},
             traffic(&stagefarm::CasTraffic::action_misses));
}

}  // namespace

int main(int argc, char** argv) {
  stagefarm::CasServerOptions options;
  std::string data_dir;
  int64_t max_bytes = 0;
  std::vector<std::string> share;
  std::string ac_writers = "all";
  std::string ac_token_file;
  bool fsync = false;
  stagefarm::DaemonFlags daemon_flags;

  CLI::App app{
      "stagefarm-cas: content-addressable store (REAPI v2) on RocksDB"};
  stagefarm::AddDaemonFlags(
      &app, &daemon_flags,
      "JSON file of tenants (common/tenants.h): callers must be known, use "
      "only their instances; only workers write the action cache");
  app.add_option("--listen", options.listen,
                 "HOST:PORT to serve on (port 0: any)")
      ->required();
  app.add_option("--data", data_dir, "directory of the RocksDB database")
      ->required();
  app.add_option("--max-bytes", max_bytes,
                 "bound on stored content bytes, LRU eviction (0: unbounded)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--share-instances", share,
                 "comma-separated instance names that share one namespace "
                 "(repeatable)");
  app.add_option("--action-cache-writers", ac_writers,
                 "who may call UpdateActionResult: all, none, or token")
      ->check(CLI::IsMember({"all", "none", "token"}));
  app.add_option("--action-cache-token-file", ac_token_file,
                 "file holding the bearer token trusted workers present");
  app.add_option("--wal-bypass-bytes", options.store.wal_bypass_bytes,
                 "streamed blobs this large skip the write-ahead log and are "
                 "flushed before they become visible")
      ->check(CLI::PositiveNumber);
  app.add_flag("--fsync", fsync, "fsync the log each time a blob is committed");
  app.add_flag("--shard", options.shard,
               "this server is one of several CAS shards (clients list them "
               "all in --cas): the action cache leaves checking that a "
               "result's outputs exist to the clients");
  CLI11_PARSE(app, argc, argv);
  absl::StatusOr<stagefarm::Daemon> daemon =
      stagefarm::StartDaemon("stagefarm-cas", daemon_flags, /*server=*/true);
  if (!daemon.ok()) {
    std::cerr << "stagefarm-cas: " << daemon.status().message() << "\n";
    return 2;
  }

  // Blob chunks are ~1 MiB buffers, allocated and freed constantly. With
  // glibc's defaults they are mmapped or trimmed back to the kernel, and every
  // reuse pays page faults (costly under virtualization: -40% throughput
  // measured). Keep them in the heap instead.
  // Two arenas bound what idle threads hold on to.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  mallopt(M_ARENA_MAX, 2);

  options.store.path = data_dir;
  options.store.max_bytes = max_bytes;
  options.store.sync_commits = fsync;
  for (const std::string& group : share) {
    options.policy.share_groups.push_back(
        absl::StrSplit(group, ',', absl::SkipEmpty()));
  }
  if (ac_writers == "none") {
    options.policy.ac_writers = stagefarm::ActionCacheWriters::kNone;
  } else if (ac_writers == "token") {
    options.policy.ac_writers = stagefarm::ActionCacheWriters::kToken;
    std::ifstream in(ac_token_file);
    if (ac_token_file.empty() || !in) {
      std::cerr << "stagefarm-cas: --action-cache-writers=token needs a "
                   "readable --action-cache-token-file\n";
      return 2;
    }
    std::getline(in, options.policy.ac_token);
  }

  if (const auto& tenants = daemon->tenants) {
    options.policy.tenants = tenants;
    // Storage quotas: each instance of a tenant with max_bytes, by the
    // namespace the instance maps to.
    auto policy = stagefarm::InstancePolicy::Create(options.policy);
    if (!policy.ok()) {
      std::cerr << "stagefarm-cas: " << policy.status().message() << "\n";
      return 2;
    }
    auto quotas = std::make_shared<std::map<std::string, int64_t>>();
    for (const stagefarm::Tenant& t : tenants->all()) {
      if (t.max_bytes <= 0) continue;
      for (const std::string& instance : t.instances) {
        if (instance == "*") continue;
        auto ns = policy->Namespace(instance);
        if (!ns.ok()) {
          std::cerr << "stagefarm-cas: --tenants: " << ns.status().message()
                    << "\n";
          return 2;
        }
        (*quotas)[*ns] = t.max_bytes;
      }
    }
    if (!quotas->empty()) {
      options.store.namespace_quota = [quotas](absl::string_view ns) {
        auto it = quotas->find(std::string(ns));
        return it == quotas->end() ? int64_t{0} : it->second;
      };
    }
  }
  stagefarm::Metrics* metrics = daemon->metrics.get();
  options.metrics = metrics;
  auto server = stagefarm::CasServer::Start(options);
  if (!server.ok()) {
    std::cerr << "stagefarm-cas: " << server.status().message() << "\n";
    return 1;
  }
  if (metrics) RegisterCasMetrics(metrics, (*server)->store());
  // One line on stdout that scripts can wait for.
  std::cout << "stagefarm-cas listening on " << (*server)->address()
            << std::endl;
  if (metrics) {
    std::cout << "stagefarm-cas metrics on port " << metrics->port()
              << std::endl;
  }
  stagefarm::LogInfo("serving", {{"data", data_dir},
                                 {"max_bytes", std::to_string(max_bytes)}});

  stagefarm::StopOnSignals();
  std::thread waiter([&] { (*server)->Wait(); });
  stagefarm::WaitForStop();
  stagefarm::LogInfo("shutting down",
                     {{"signal", std::to_string(stagefarm::StopSignal())}});
  (*server)->Shutdown();
  waiter.join();
  server->reset();
  return 0;
}
