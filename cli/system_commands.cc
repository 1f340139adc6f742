// `stagefarm system df` and `stagefarm prune`: what the local store, the
// unpacked layers and the cache mounts use, and freeing it (disk_usage.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/disk_usage.h"
#include "cli/exit_status.h"
#include "cli/local.h"

namespace stagefarm::cli {
namespace {

struct SystemFlags {
  bool all = false;
  int64_t keep_bytes = 0;
};

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
}

}  // namespace stagefarm::cli
