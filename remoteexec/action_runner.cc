#include "remoteexec/action_runner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "blobstore/blob_files.h"
#include "common/fs_util.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "contexttree/context_upload.h"
#include "remoteexec/command_rules.h"

namespace stagefarm::remoteexec {
namespace {

// Whether a failure to prepare or run the action is the action's own (the
// client hears it in the response) rather than this worker's.
bool ActionsFault(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition ||
         s.code() == absl::StatusCode::kNotFound;
}

void SetTime(google::protobuf::Timestamp* t, absl::Time when) {
  const int64_t ns = absl::ToUnixNanos(when);
  t->set_seconds(ns / 1000000000);
  t->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

std::string Join(const std::string& a, absl::string_view b) {
  return b.empty() ? a : absl::StrCat(a, "/", b);
}

}  // namespace

reapi::ExecuteResponse FailedResponse(const absl::Status& status) {
  reapi::ExecuteResponse r;
  ToRpcStatus(status, r.mutable_status());
  return r;
}

struct ActionRunner::Prepared {
  reapi::Action action;
  reapi::Command command;
  std::string dir;                // scratch, removed afterwards
  std::string root;               // the input root on this host
  std::string working_directory;  // relative to the root
  std::unique_ptr<snapshot::OverlayMount> rootfs;
  std::string rootfs_dir;
  std::chrono::nanoseconds timeout{0};
  reapi::ExecutedActionMetadata metadata;
};

absl::StatusOr<reapi::ExecuteResponse> ActionRunner::Run(
    const ActionRequest& request, const std::atomic<bool>* cancel) {
  Prepared p;
  p.metadata.set_worker(options_.worker_name);
  SetTime(p.metadata.mutable_worker_start_timestamp(), absl::Now());
  struct Cleanup {
    Prepared* p;
    ~Cleanup() {
      if (p->rootfs) (void)p->rootfs->Unmount();
      if (!p->rootfs_dir.empty()) (void)RemoveAll(p->rootfs_dir);
      if (!p->dir.empty()) (void)RemoveAll(p->dir);
    }
  } cleanup{&p};
  absl::Status prepared = Prepare(request, &p);
  if (!prepared.ok()) {
    if (ActionsFault(prepared)) {
      if (prepared.code() == absl::StatusCode::kNotFound) {
        // REAPI: a blob the action needs that the CAS lacks.
        return FailedResponse(absl::FailedPreconditionError(
            absl::StrCat("missing input: ", prepared.message())));
      }
      return FailedResponse(prepared);
    }
    return prepared;
  }
  return Execute(request, &p, cancel);
}

absl::Status ActionRunner::MakeOwnedDirs(const std::string& root,
                                         absl::string_view rel,
                                         absl::string_view what) {
  std::string inside;  // the path so far, relative to root
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    inside = Join(inside, part);
    ASSIGN_OR_RETURN(std::string path,
                     ResolveInInputRoot(root, inside, true, what));
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Command: ", rel,
                         " needs a directory where the input root has a file"));
      }
      continue;
    }
    if (mkdir(path.c_str(), 0755) != 0 ||
        chown(path.c_str(), options_.uid, options_.gid) != 0) {
      return absl::InternalError(absl::StrCat("cannot create ", path));
    }
  }
  return absl::OkStatus();
}

absl::Status ActionRunner::Prepare(const ActionRequest& request, Prepared* p) {
  CasClient* cas = store_->client();
  SetTime(p->metadata.mutable_input_fetch_start_timestamp(), absl::Now());
  absl::StatusOr<std::string> action_bytes = cas->ReadString(request.action);
  if (absl::IsNotFound(action_bytes.status())) {
    return MissingBlobs({request.action},
                        absl::StrCat("the Action ", request.action.ToString(),
                                     " is not in the CAS"));
  }
  if (!action_bytes.ok()) {
    return absl::Status(action_bytes.status().code(),
                        absl::StrCat("the Action ", request.action.ToString(),
                                     ": ", action_bytes.status().message()));
  }
  if (!p->action.ParseFromString(*action_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the Action ", request.action.ToString(), " is not an Action message"));
  }
  absl::StatusOr<Digest> command_digest =
      Digest::FromProto(p->action.command_digest());
  if (!command_digest.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Action.command_digest: ", command_digest.status().message()));
  }
  absl::StatusOr<Digest> input_root =
      Digest::FromProto(p->action.input_root_digest());
  if (!input_root.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Action.input_root_digest: ", input_root.status().message()));
  }
  absl::StatusOr<std::string> command_bytes = cas->ReadString(*command_digest);
  if (absl::IsNotFound(command_bytes.status())) {
    return MissingBlobs({*command_digest},
                        absl::StrCat("the Command ", command_digest->ToString(),
                                     " is not in the CAS"));
  }
  if (!command_bytes.ok()) {
    return absl::Status(command_bytes.status().code(),
                        absl::StrCat("the Command ", command_digest->ToString(),
                                     ": ", command_bytes.status().message()));
  }
  if (!p->command.ParseFromString(*command_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Command ", command_digest->ToString(),
                     " is not a Command message"));
  }
  const reapi::Command& c = p->command;
  // Before anything runs: what the kernel or the sandbox could not take
  // (a NUL in the environment) is the action's fault, and says so.
  RETURN_IF_ERROR(CheckCommand(c));
  p->working_directory = c.working_directory();
  const auto& t = p->action.timeout();
  p->timeout =
      std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos());
  if (p->timeout < std::chrono::nanoseconds(0)) {
    return absl::InvalidArgumentError("Action.timeout: negative");
  }
  if (p->timeout > options_.max_timeout) {
    return absl::InvalidArgumentError(
        absl::StrCat("Action.timeout: ", t.seconds(), " s is over this farm's ",
                     options_.max_timeout.count(), " s"));
  }
  if (p->timeout.count() == 0) p->timeout = options_.max_timeout;

  // The input root, then the directories the outputs go in (REAPI: the
  // worker makes them).
  RETURN_IF_ERROR(MakeDirs(options_.scratch_dir, 0700));
  ASSIGN_OR_RETURN(p->dir, MakeTempDir(options_.scratch_dir, "action-"));
  p->root = p->dir + "/root";
  FileCache::Stats fetched;
  RETURN_IF_ERROR(files_->Materialize(cas, *input_root, p->root, options_.uid,
                                      options_.gid, &fetched));
  SetTime(p->metadata.mutable_input_fetch_completed_timestamp(), absl::Now());
  RETURN_IF_ERROR(MakeOwnedDirs(p->root, p->working_directory,
                                "Command.working_directory"));
  for (const auto& [list, field] :
       {std::pair{&c.output_paths(), "output_paths"},
        std::pair{&c.output_files(), "output_files"},
        std::pair{&c.output_directories(), "output_directories"}}) {
    for (const std::string& out : *list) {
      std::string rel = Join(p->working_directory, out);
      RETURN_IF_ERROR(
          MakeOwnedDirs(p->root, rel.substr(0, rel.rfind('/') + 1),
                        absl::StrCat("Command.", field, " \"", out, "\"")));
    }
  }

  // The root file system: the image's layers under a throwaway upper.
  if (!request.image_manifest) {
    return absl::FailedPreconditionError(
        "the action has no container image (platform property "
        "container-image) and the scheduler has no default");
  }
  ASSIGN_OR_RETURN(image::ResolvedImage img,
                   images_->Load(*request.image_manifest));
  ASSIGN_OR_RETURN(std::vector<std::string> lowers,
                   snapshots_->Prepare(img.image.layers, img.image.diff_ids));
  ASSIGN_OR_RETURN(p->rootfs_dir, snapshots_->TempDir("action-rootfs-"));
  for (const char* sub : {"/upper", "/work", "/merged"}) {
    RETURN_IF_ERROR(MakeDirs(p->rootfs_dir + sub, 0755));
  }
  ASSIGN_OR_RETURN(
      p->rootfs, snapshot::OverlayMount::Mount(
                     lowers, p->rootfs_dir + "/upper", p->rootfs_dir + "/work",
                     p->rootfs_dir + "/merged", snapshots_->empty_dir()));
  return absl::OkStatus();
}

absl::StatusOr<reapi::ExecuteResponse> ActionRunner::Execute(
    const ActionRequest& request, Prepared* p,
    const std::atomic<bool>* cancel) {
  const reapi::Command& c = p->command;
  executor::ExecSpec spec;
  spec.rootfs = p->rootfs->path();
  spec.args.assign(c.arguments().begin(), c.arguments().end());
  for (const auto& v : c.environment_variables()) {
    spec.env.push_back(absl::StrCat(v.name(), "=", v.value()));
  }
  spec.cwd = Join(kExecRoot, p->working_directory);
  spec.uid = options_.uid;
  spec.gid = options_.gid;
  spec.no_capabilities = true;
  spec.network =
      request.network ? executor::Network::kSandbox : executor::Network::kNone;
  spec.hostname = "localhost";
  executor::ExecMount input;
  input.source = p->root;
  input.destination = kExecRoot;
  spec.mounts.push_back(input);
  spec.stdout_file = p->dir + "/stdout";
  spec.stderr_file = p->dir + "/stderr";

  // The timeout and the caller's cancellation both kill the sandbox.
  std::atomic<bool> kill{false};
  std::atomic<bool> timed_out{false};
  spec.cancel = &kill;
  absl::Notification done;
  const absl::Time deadline = absl::Now() + absl::FromChrono(p->timeout);
  std::thread watch([&] {
    while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      if (cancel != nullptr && cancel->load()) {
        kill = true;
        return;
      }
      if (absl::Now() >= deadline) {
        timed_out = true;
        kill = true;
        return;
      }
    }
  });
  SetTime(p->metadata.mutable_execution_start_timestamp(), absl::Now());
  absl::StatusOr<executor::ExecResult> ran = executor_->Run(spec);
  SetTime(p->metadata.mutable_execution_completed_timestamp(), absl::Now());
  done.Notify();
  watch.join();
  if (cancel != nullptr && cancel->load()) {
    return absl::CancelledError("the action was cancelled");
  }
  if (!ran.ok() && !(timed_out && absl::IsCancelled(ran.status()))) {
    if (ActionsFault(ran.status())) return FailedResponse(ran.status());
    return ran.status();
  }

  reapi::ExecuteResponse response;
  reapi::ActionResult* result = response.mutable_result();
  result->set_exit_code(ran.ok() ? ran->exit_code : 137);
  SetTime(p->metadata.mutable_output_upload_start_timestamp(), absl::Now());
  absl::Status uploaded = UploadOutputs(*p, result);
  if (!uploaded.ok()) {
    if (ActionsFault(uploaded)) return FailedResponse(uploaded);
    return uploaded;
  }
  SetTime(p->metadata.mutable_output_upload_completed_timestamp(), absl::Now());
  SetTime(p->metadata.mutable_worker_completed_timestamp(), absl::Now());
  *result->mutable_execution_metadata() = p->metadata;
  if (timed_out) {
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(p->timeout).count();
    response.mutable_status()->set_code(
        static_cast<int>(absl::StatusCode::kDeadlineExceeded));
    response.mutable_status()->set_message(absl::StrCat(
        "the action ran over its timeout (", seconds,
        " s) and was killed; its output until then is in the result"));
    return response;
  }
  if (result->exit_code() == 0 && !request.do_not_cache &&
      !p->action.do_not_cache()) {
    RETURN_IF_ERROR(
        store_->client()->UpdateActionResult(request.action, *result));
  }
  return response;
}

absl::Status ActionRunner::UploadOutputs(const Prepared& p,
                                         reapi::ActionResult* result) {
  CasClient* cas = store_->client();
  auto upload_file = [&](const std::string& path) -> absl::StatusOr<Digest> {
    ASSIGN_OR_RETURN(Digest d, HashFile(path));
    RETURN_IF_ERROR(UploadFile(store_, "", path, d));
    return d;
  };
  {
    ASSIGN_OR_RETURN(Digest out, upload_file(p.dir + "/stdout"));
    out.ToProto(result->mutable_stdout_digest());
    ASSIGN_OR_RETURN(Digest err, upload_file(p.dir + "/stderr"));
    err.ToProto(result->mutable_stderr_digest());
  }
  enum class Want { kFile, kDirectory, kAny };
  auto collect = [&](const std::string& out, Want want) -> absl::Status {
    const std::string rel = Join(p.working_directory, out);
    ASSIGN_OR_RETURN(std::string host,
                     ResolveInInputRoot(p.root, rel, false,
                                        absl::StrCat("output \"", out, "\"")));
    struct stat st;
    if (lstat(host.c_str(), &st) != 0) return absl::OkStatus();  // not made
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = readlink(host.c_str(), target.data(), target.size());
      if (n < 0) return absl::OkStatus();
      target.resize(static_cast<size_t>(n));
      reapi::OutputSymlink* link =
          want == Want::kAny    ? result->add_output_symlinks()
          : want == Want::kFile ? result->add_output_file_symlinks()
                                : result->add_output_directory_symlinks();
      link->set_path(out);
      link->set_target(target);
      return absl::OkStatus();
    }
    if (S_ISREG(st.st_mode) && want != Want::kDirectory) {
      ASSIGN_OR_RETURN(Digest d, upload_file(host));
      reapi::OutputFile* f = result->add_output_files();
      f->set_path(out);
      d.ToProto(f->mutable_digest());
      f->set_is_executable((st.st_mode & 0111) != 0);
      return absl::OkStatus();
    }
    if (S_ISDIR(st.st_mode) && want != Want::kFile) {
      ASSIGN_OR_RETURN(contexttree::ContextTree tree,
                       contexttree::BuildContextTree(host, nullptr, nullptr));
      RETURN_IF_ERROR(contexttree::UploadMissing(tree, cas).status());
      reapi::Tree t;
      for (const auto& [digest, bytes] : tree.directories) {
        reapi::Directory* d =
            digest == tree.root ? t.mutable_root() : t.add_children();
        if (!d->ParseFromString(bytes)) {
          return absl::InternalError("a Directory of an output did not parse");
        }
      }
      std::string bytes = t.SerializeAsString();
      Digest td = Digest::Of(bytes);
      RETURN_IF_ERROR(cas->WriteString(bytes));
      reapi::OutputDirectory* d = result->add_output_directories();
      d->set_path(out);
      td.ToProto(d->mutable_tree_digest());
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "output ", out, " is ",
        S_ISDIR(st.st_mode)   ? "a directory; the Command lists it as a file"
        : S_ISREG(st.st_mode) ? "a file; the Command lists it as a directory"
                              : "neither a file, a directory nor a symlink"));
  };
  const reapi::Command& c = p.command;
  if (!c.output_paths().empty()) {
    for (const std::string& out : c.output_paths()) {
      RETURN_IF_ERROR(collect(out, Want::kAny));
    }
  } else {
    for (const std::string& out : c.output_files()) {
      RETURN_IF_ERROR(collect(out, Want::kFile));
    }
    for (const std::string& out : c.output_directories()) {
      RETURN_IF_ERROR(collect(out, Want::kDirectory));
    }
  }
  return absl::OkStatus();
}

}  // namespace stagefarm::remoteexec
