// Runs one REAPI action on a worker, as the Remote Execution API describes
// it: the Action and its Command are read from the CAS, the input root is
// written into a scratch directory (files hard-linked from the worker's
// file cache), the command runs in the runc sandbox on
// an overlayfs of a container image's layers (the input root bound at
// kExecRoot, the working directory below it), with exactly the command's
// arguments and environment, and no network unless the action may have
// one. Then the outputs (files, directories as Trees, symlinks, stdout and
// stderr) go to the CAS, and an ActionResult that exited 0 goes to the
// action cache unless the action says do_not_cache.
//
// A command that exits non-zero is a result (ExecuteResponse.status OK); a
// command over its timeout is killed and answered DEADLINE_EXCEEDED with
// what it wrote until then; a missing input blob is FAILED_PRECONDITION,
// a malformed Action or Command INVALID_ARGUMENT naming the field.
// Thread-safe: several actions may run at the same time.
#ifndef STAGEFARM_REMOTEEXEC_ACTION_RUNNER_H_
#define STAGEFARM_REMOTEEXEC_ACTION_RUNNER_H_

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "blobstore/remote_store.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/digest.h"
#include "executor/executor.h"
#include "image/image_store.h"
#include "remoteexec/command_rules.h"
#include "remoteexec/file_cache.h"
#include "snapshot/snapshots.h"

namespace stagefarm::remoteexec {

struct ActionRequest {
  Digest action;
  std::optional<Digest> image_manifest;  // the root file system's image
  bool network = false;
  bool do_not_cache = false;
};

struct ActionRunnerOptions {
  std::string scratch_dir;  // each action gets a directory below it
  std::string worker_name;  // ExecutedActionMetadata.worker
  // Who the command runs as (no capabilities): it owns the input root's
  // directories, not its files (file_cache.h).
  uid_t uid = 65534;
  gid_t gid = 65534;
  // Used when the Action sets no timeout, and the most any may ask for.
  std::chrono::seconds max_timeout{3600};
};

class ActionRunner {
 public:
  // `store`: the CAS instance of the action (blobs and its action cache);
  // `images` and `snapshots` of the same instance.
  ActionRunner(RemoteBlobStore* store, FileCache* files,
               image::ImageStore* images, snapshot::Snapshotter* snapshots,
               executor::Executor* executor, ActionRunnerOptions options)
      : store_(store),
        files_(files),
        images_(images),
        snapshots_(snapshots),
        executor_(executor),
        options_(std::move(options)) {}

  // The action's ExecuteResponse. An error is a failure to run it that
  // another worker might not have (its disk, the sandbox) or the caller
  // cancelling (CANCELLED); faults of the action itself are in the
  // response's status.
  absl::StatusOr<reapi::ExecuteResponse> Run(const ActionRequest& request,
                                             const std::atomic<bool>* cancel);

 private:
  struct Prepared;
  absl::Status Prepare(const ActionRequest& request, Prepared* p);
  absl::StatusOr<reapi::ExecuteResponse> Execute(
      const ActionRequest& request, Prepared* p,
      const std::atomic<bool>* cancel);
  absl::Status UploadOutputs(const Prepared& p, reapi::ActionResult* result);
  // Each directory of `rel` below `root` (made owned by the action's user
  // where missing); `what` names the path in errors.
  absl::Status MakeOwnedDirs(const std::string& root, absl::string_view rel,
                             absl::string_view what);

  RemoteBlobStore* store_;
  FileCache* files_;
  image::ImageStore* images_;
  snapshot::Snapshotter* snapshots_;
  executor::Executor* executor_;
  ActionRunnerOptions options_;
};

// An ExecuteResponse whose status is `status` (no result): how a failure to
// run an action reaches the client.
reapi::ExecuteResponse FailedResponse(const absl::Status& status);

}  // namespace stagefarm::remoteexec

#endif  // STAGEFARM_REMOTEEXEC_ACTION_RUNNER_H_
