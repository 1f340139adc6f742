// The client side of a farm build (`stagefarm build --server`): resolves the
// images the Dockerfile names in the client's own index, uploads the context
// (contexttree/context_upload.h), submits the build to the scheduler and relays
// its progress; the image itself is made by the workers in the shared CAS and
// tagged in the client's index at the end.
#ifndef STAGEFARM_CLI_FARM_CLIENT_H_
#define STAGEFARM_CLI_FARM_CLIENT_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "blobstore/remote_store.h"
#include "engine/build_engine.h"
#include "image/image_store.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::cli {

struct FarmBuildOptions {
  std::string server;           // scheduler HOST:PORT
  std::string stat_cache_file;  // "" = no stat cache
  // When the scheduler goes away mid-build, how long to keep trying to
  // reattach (a scheduler with --state keeps the build across a restart).
  std::chrono::seconds reattach{60};
  // Asked of the scheduler: its provenance ("min" or "max"; "" none) about
  // an image named `subject_name`, and a reproducibility check.
  std::string provenance;
  std::string subject_name;
  bool verify_reproducible = false;
  std::string vcs_source, vcs_revision;  // cli/vcs.h
  // Where to write the build's trace when it ends (`build --trace`).
  std::string trace_path;
};

// Runs `request` on the farm. `store` is the farm's CAS (the instance the
// workers use), `images` the client's image index over it. Secrets are not
// Setting *cancel cancels the remote build.
absl::StatusOr<engine::BuildResult> FarmBuild(
    const FarmBuildOptions& options, RemoteBlobStore* store,
    image::ImageStore* images, const engine::BuildRequest& request,
    const std::function<void(const engine::BuildEvent&)>& on_event,
    const std::atomic<bool>* cancel);

// `stagefarm builds ls`: the scheduler's builds, newest first, one line each.
absl::StatusOr<std::string> ListBuildsText(const std::string& server);
// The table `builds ls` prints, a build a line.
std::string BuildsTable(const std::vector<v1::BuildSummary>& builds);
// `stagefarm logs BUILD`: the build's events from its start, then follows it
// until it ends; returns its outcome.
absl::Status WatchBuild(
    const std::string& server, const std::string& build_id,
    const std::function<void(const engine::BuildEvent&)>& on_event);
// The CAS instance a build of the farm's belongs to (NOT_FOUND for a build
// the scheduler no longer lists).
absl::StatusOr<std::string> BuildInstance(const std::string& server,
                                          const std::string& build_id);
// The farm's image index for one CAS instance (through the scheduler).
std::unique_ptr<image::TagIndex> FarmTagIndex(const std::string& server,
                                              const std::string& instance);
// The farm's CAS address as its scheduler advertises it (--cas).
absl::StatusOr<std::string> FarmCas(const std::string& server);
// Writes the build's timeline as Chrome trace-event JSON to `path` (a whole
// file or nothing; "" or "-": standard output).
absl::Status WriteTrace(const v1::BuildRecord& record, const std::string& path);
// A build's record and events (`builds trace`, `build --trace`).
absl::StatusOr<v1::BuildRecord> GetBuildRecord(const std::string& server,
                                               const std::string& build_id);
// `stagefarm cancel BUILD`.
absl::Status CancelBuild(const std::string& server,
                         const std::string& build_id);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_FARM_CLIENT_H_
