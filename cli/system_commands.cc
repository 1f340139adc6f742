// `stagefarm system df` and `stagefarm prune`: what the local store, the
// unpacked layers and the cache mounts use, and freeing it (disk_usage.h);
// `stagefarm cache ls|prune`: the cache mounts, this machine's or, with
// --server or --cas, the farm's shared ones (cachemount/cache_index.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cachemount/cache_index.h"
#include "cli/commands.h"
#include "cli/disk_usage.h"
#include "cli/exit_status.h"
#include "cli/local.h"

namespace stagefarm::cli {
namespace {

struct SystemFlags {
  bool all = false;
  int64_t keep_bytes = 0;
  bool cache_all = false;
  std::vector<std::string> cache_ids;
};

// "3 minutes ago", as docker prints ages.
std::string Ago(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  int64_t s = absl::ToUnixSeconds(absl::Now()) - unix_seconds;
  if (s < 60) return "seconds ago";
  if (s < 3600) return absl::StrFormat("%d minutes ago", s / 60);
  if (s < 86400) return absl::StrFormat("%d hours ago", s / 3600);
  return absl::StrFormat("%d days ago", s / 86400);
}

int CacheListCommand(const LocalOptions& options) {
  auto local = Local::Open(options);
  if (!local.ok()) return Fail(local.status());
  std::printf("%-32s %12s %10s  %s\n", "ID", "SIZE", "FILES", "LAST USED");
  if (RemoteBlobStore* remote = (*local)->remote()) {
    absl::StatusOr<std::vector<cachemount::CacheInfo>> caches =
        cachemount::ListCaches(remote);
    if (!caches.ok()) return Fail(caches.status());
    for (const auto& c : *caches) {
      std::printf("%-32s %12s %10lld  %s\n", c.id.c_str(),
                  HumanBytes(c.bytes).c_str(), static_cast<long long>(c.files),
                  Ago(c.used).c_str());
    }
    return 0;
  }
  for (const LocalCache& c : ListLocalCaches(local->get())) {
    std::printf("%-32s %12s %10s  %s\n", c.id.c_str(),
                HumanBytes(c.bytes).c_str(), "-", Ago(c.used).c_str());
  }
  return 0;
}

int CachePruneCommand(const LocalOptions& options, const SystemFlags& flags) {
  if (!flags.cache_all && flags.cache_ids.empty()) {
    return Fail(absl::InvalidArgumentError(
        "name the caches to prune (IDs, as `stagefarm cache ls` shows "
        "them) or give --all"));
  }
  auto local = Local::Open(options);
  if (!local.ok()) return Fail(local.status());
  int64_t n = 0, bytes = 0;
  if (RemoteBlobStore* remote = (*local)->remote()) {
    std::vector<std::string> ids = flags.cache_ids;
    if (flags.cache_all) {
      absl::StatusOr<std::vector<cachemount::CacheInfo>> caches =
          cachemount::ListCaches(remote);
      if (!caches.ok()) return Fail(caches.status());
      for (const auto& c : *caches) ids.push_back(c.id);
    }
    absl::StatusOr<std::vector<cachemount::CacheInfo>> removed =
        cachemount::PruneCaches(remote, ids);
    if (!removed.ok()) return Fail(removed.status());
    for (const auto& c : *removed) {
      ++n;
      bytes += c.bytes;
    }
    std::printf(
        "pruned %lld shared caches (%s); workers empty their copies when "
        "they next use them\n",
        static_cast<long long>(n), HumanBytes(bytes).c_str());
    return 0;
  }
  absl::StatusOr<std::vector<LocalCache>> removed =
      PruneLocalCaches(local->get(), flags.cache_ids, flags.cache_all);
  if (!removed.ok()) return Fail(removed.status());
  for (const auto& c : *removed) {
    ++n;
    bytes += c.bytes;
  }
  std::printf("pruned %lld cache mounts (%s)\n", static_cast<long long>(n),
              HumanBytes(bytes).c_str());
  return 0;
}

int DfCommand(const LocalOptions& options) {
  auto local = Local::Open(options);
  if (!local.ok()) return Fail(local.status());
  absl::StatusOr<DiskUsage> u = MeasureDiskUsage(local->get());
  if (!u.ok()) return Fail(u.status());
  std::printf("%-14s %8s %12s %14s\n", "TYPE", "ITEMS", "SIZE", "RECLAIMABLE");
  std::printf("%-14s %8lld %12s %14s\n", "Blobs",
              static_cast<long long>(u->blobs),
              HumanBytes(u->blob_bytes).c_str(),
              HumanBytes(u->blob_bytes - u->kept_bytes).c_str());
  std::printf("%-14s %8lld %12s %14s\n", "Images",
              static_cast<long long>(u->images),
              HumanBytes(u->kept_bytes).c_str(), HumanBytes(0).c_str());
  std::printf("%-14s %8lld %12s %14s\n", "Snapshots",
              static_cast<long long>(u->snapshots),
              HumanBytes(u->snapshot_bytes).c_str(),
              HumanBytes(u->snapshot_bytes).c_str());
  std::printf("%-14s %8lld %12s %14s\n", "Cache mounts",
              static_cast<long long>(u->cache_mounts),
              HumanBytes(u->cache_mount_bytes).c_str(),
              HumanBytes(u->cache_mount_bytes).c_str());
  std::printf("%-14s %8s %12s\n", "Total", "", HumanBytes(u->Total()).c_str());
  return 0;
}

int PruneCommand(const LocalOptions& options, const SystemFlags& flags) {
  auto local = Local::Open(options);
  if (!local.ok()) return Fail(local.status());
  PruneOptions o;
  o.all = flags.all;
  o.keep_bytes = flags.keep_bytes;
  absl::StatusOr<Pruned> p = Prune(local->get(), o);
  if (!p.ok()) return Fail(p.status());
  std::printf(
      "removed %lld blobs (%s), %lld snapshots (%s), %lld cache mounts (%s)\n"
      "total reclaimed: %s\n",
      static_cast<long long>(p->blobs), HumanBytes(p->blob_bytes).c_str(),
      static_cast<long long>(p->snapshots),
      HumanBytes(p->snapshot_bytes).c_str(),
      static_cast<long long>(p->cache_mounts),
      HumanBytes(p->cache_mount_bytes).c_str(),
      HumanBytes(p->blob_bytes + p->snapshot_bytes + p->cache_mount_bytes)
          .c_str());
  return 0;
}

}  // namespace

void AddSystemCommands(CLI::App* app, LocalOptions* local, Commands* out) {
  auto flags = std::make_shared<SystemFlags>();
  CLI::App* system =
      app->add_subcommand("system", "the local store's disk use");
  system->require_subcommand(1);
  CLI::App* df = system->add_subcommand(
      "df", "what blobs, tagged images, snapshots and cache mounts use");
  out->push_back({df, [local] { return DfCommand(*local); },
                  /*uses_store=*/false, /*local_engine=*/true});
  CLI::App* prune = app->add_subcommand(
      "prune",
      "free the local store: snapshots and blobs no tagged image needs, "
      "least recently used first (STAGEFARM_MAX_BYTES keeps a bound after "
      "each build)");
  prune->add_flag("-a,--all", flags->all, "cache mounts too");
  prune
      ->add_option("--keep-bytes", flags->keep_bytes,
                   "stop once everything fits in this many bytes")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  out->push_back({prune,
                  [local, flags] { return PruneCommand(*local, *flags); },
                  /*uses_store=*/false, /*local_engine=*/true});

  CLI::App* cache = app->add_subcommand(
      "cache",
      "RUN --mount=type=cache contents: this machine's, or with --server "
      "or --cas the farm's shared ones");
  cache->require_subcommand(1);
  cache->fallthrough();
  AddStoreFlags(cache, local);
  CLI::App* cache_ls = cache->add_subcommand("ls", "list the caches");
  out->push_back({cache_ls, [local] { return CacheListCommand(*local); },
                  /*uses_store=*/true, /*local_engine=*/true});
  CLI::App* cache_prune = cache->add_subcommand(
      "prune", "empty caches (on every worker of a farm)");
  cache_prune->add_option("ID", flags->cache_ids, "the caches to prune");
  cache_prune->add_flag("-a,--all", flags->cache_all, "every cache");
  out->push_back({cache_prune,
                  [local, flags] { return CachePruneCommand(*local, *flags); },
                  /*uses_store=*/true, /*local_engine=*/true});
}

}  // namespace stagefarm::cli
