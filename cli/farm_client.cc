#include "cli/farm_client.h"

#include <grpcpp/grpcpp.h>

#include <ctime>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "buildview/build_view.h"
#include "cli/ssh_forward.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/grpc_status.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "contexttree/context_upload.h"
#include "farmapi/build_spec.h"
#include "farmapi/events.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/plan.h"
#include "image/image_diff.h"
#include "platform/platform.h"
#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::cli {
namespace {

// As BuildKit: secrets are for tokens and keys, not payloads.
constexpr size_t kMaxSecretBytes = 500 * 1024;

// Every image the needed stages name (FROM, --from, RUN --mount=from),
// resolved in the client's index.
absl::Status ResolveImages(const engine::BuildRequest& request,
                           image::ImageStore* images, v1::BuildSpec* spec) {
  ASSIGN_OR_RETURN(
      dockerfile::Plan plan,
      dockerfile::PlanDockerfile(request.dockerfile, request.plan_options,
                                 request.dockerfile_name));
  // Each name for the platform of the stage naming it (pulled if need
  // be); the worker gets the tagged digest, an image or an index, and
  // chooses from it for the stage's platform.
  for (const auto& st : plan.stages) {
    if (!st.needed) continue;
    std::vector<std::string> names = st.images;
    if (st.base_stage < 0 && absl::AsciiStrToLower(st.base) != "scratch") {
      names.push_back(st.base);
    }
    ASSIGN_OR_RETURN(platform::Platform p,
                     platform::Parse(dockerfile::StagePlatform(
                         plan, st.index, request.plan_options)));
    for (const std::string& name : names) {
      RETURN_IF_ERROR(images->Resolve(name, p).status());
      ASSIGN_OR_RETURN(Digest tagged, images->Tagged(name));
      tagged.ToProto(&(*spec->mutable_images())[name]);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Digest> UploadContext(const FarmBuildOptions& options,
                                     RemoteBlobStore* store,
                                     const engine::BuildRequest& request) {
  std::optional<dockerfile::DockerignoreMatcher> ignore;
  if (!request.dockerignore.empty()) {
    ASSIGN_OR_RETURN(ignore,
                     dockerfile::DockerignoreMatcher::Create(
                         dockerfile::ReadDockerignore(request.dockerignore)));
  }
  contexttree::StatCache cache;
  if (!options.stat_cache_file.empty()) {
    cache = contexttree::StatCache::Load(options.stat_cache_file);
  }
  ASSIGN_OR_RETURN(
      contexttree::ContextTree tree,
      contexttree::BuildContextTree(request.context_dir,
                                    ignore ? &*ignore : nullptr, &cache));
  ASSIGN_OR_RETURN(contexttree::UploadStats up,
                   contexttree::UploadMissing(tree, store->client()));
  (void)up;
  if (!options.stat_cache_file.empty()) {
    cache.DropUnused();
    (void)cache.Save(options.stat_cache_file);  // only saves work next time
  }
  return tree.root;
}

}  // namespace

absl::StatusOr<engine::BuildResult> FarmBuild(
    const FarmBuildOptions& options, RemoteBlobStore* store,
    image::ImageStore* images, const engine::BuildRequest& request,
    const std::function<void(const engine::BuildEvent&)>& on_event,
    const std::atomic<bool>* cancel) {
  v1::BuildSpec spec;
  for (const auto& [id, path] : request.secrets) {
    RETURN_IF_ERROR(farmapi::CheckMapKey("--secret id", id));
    // Sent with the build to the workers that need it; the scheduler keeps
    // it in memory only.
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret ", id, ": cannot read ", path));
    }
    if (bytes.size() > kMaxSecretBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret ", id, ": ", path, " is ", bytes.size(),
                       " bytes; secrets are limited to ", kMaxSecretBytes));
    }
    (*spec.mutable_secrets())[id] = std::move(bytes);
  }
  // The agents' ids go with the build; the agents stay here, served
  // while the build runs (SshAgentServer).
  for (const auto& [id, path] : request.ssh) spec.add_ssh_ids(id);
  RETURN_IF_ERROR(farmapi::ToSpec(request, &spec));
  spec.set_instance_name(store->client()->instance_name());
  spec.set_provenance(options.provenance);
  spec.set_subject_name(options.subject_name);
  for (const std::string& tag : request.tags) spec.add_tags(tag);
  spec.set_verify_reproducible(options.verify_reproducible);
  spec.set_vcs_source(options.vcs_source);
  spec.set_vcs_revision(options.vcs_revision);
  RETURN_IF_ERROR(ResolveImages(request, images, &spec));
  ASSIGN_OR_RETURN(Digest root, UploadContext(options, store, request));
  root.ToProto(spec.mutable_context());

  auto stub = v1::Scheduler::NewStub(FarmChannel(options.server));
  std::string build_id;
  std::unique_ptr<SshAgentServer> ssh;
  size_t seen = 0;  // events relayed (a reattached stream starts over)
  v1::BuildUpdate last;
  bool finished = false;
  grpc::Status status;
  auto follow = [&](grpc::ClientContext* ctx,
                    grpc::ClientReaderInterface<v1::BuildUpdate>* stream) {
    // Watches *cancel while the stream is read; woken at once when the
    // stream ends.
    absl::Mutex mu;
    absl::CondVar cv;
    bool reading = true;
    std::thread watcher([&] {
      absl::MutexLock lock(&mu);
      while (reading) {
        if (cancel != nullptr && cancel->load()) {
          ctx->TryCancel();
          return;
        }
        cv.WaitWithTimeout(&mu, absl::Milliseconds(50));
      }
    });
    v1::BuildUpdate update;
    size_t index = 0;
    while (stream->Read(&update)) {
      if (build_id.empty()) build_id = update.build_id();
      if (ssh == nullptr && !request.ssh.empty() && !build_id.empty()) {
        ssh =
            std::make_unique<SshAgentServer>(stub.get(), build_id, request.ssh);
      }
      for (const v1::Event& e : update.events()) {
        if (index++ < seen) continue;
        ++seen;
        if (on_event) on_event(farmapi::FromWire(e));
      }
      if (update.finished()) {
        finished = true;
        last = update;
      }
    }
    {
      absl::MutexLock lock(&mu);
      reading = false;
    }
    cv.SignalAll();
    watcher.join();
    status = stream->Finish();
  };
  {
    grpc::ClientContext ctx;
    v1::SubmitBuildRequest submit;
    *submit.mutable_spec() = spec;
    auto stream = stub->Build(&ctx, submit);
    follow(&ctx, stream.get());
  }
  // The scheduler went away mid-build: reattach when it is back.
  auto give_up = std::chrono::steady_clock::now() + options.reattach;
  bool told = false;
  while (!finished && !build_id.empty() &&
         (cancel == nullptr || !cancel->load()) &&
         status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         std::chrono::steady_clock::now() < give_up) {
    if (!told && on_event) {
      engine::BuildEvent ev;
      ev.kind = engine::BuildEvent::Kind::kNote;
      ev.stage = "farm";
      ev.text = absl::StrCat("lost the scheduler at ", options.server, " (",
                             status.error_message(), "); reattaching to build ",
                             build_id);
      on_event(ev);
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    grpc::ClientContext ctx;
    v1::WatchBuildRequest req;
    req.set_build_id(build_id);
    auto stream = stub->WatchBuild(&ctx, req);
    follow(&ctx, stream.get());
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      return absl::UnavailableError(
          absl::StrCat("the scheduler at ", options.server,
                       " restarted and no longer knows "
                       "build ",
                       build_id,
                       " (start it with --state DIR to keep builds "
                       "across restarts)"));
    }
  }
  if (finished && !options.trace_path.empty()) {
    absl::StatusOr<v1::BuildRecord> record =
        GetBuildRecord(options.server, build_id);
    absl::Status s =
        record.ok() ? WriteTrace(*record, options.trace_path) : record.status();
    if (!s.ok() && on_event) {
      engine::BuildEvent ev;
      ev.kind = engine::BuildEvent::Kind::kNote;
      ev.stage = "farm";
      ev.text = absl::StrCat("no trace written: ", s.message());
      on_event(ev);
    }
  }
  if (cancel != nullptr && cancel->load()) {
    // A reattached stream does not own the build: cancel it by name.
    if (!build_id.empty() && !finished)
      (void)CancelBuild(options.server, build_id);
    return absl::CancelledError("build cancelled");
  }
  if (!finished) {
    if (!status.ok()) {
      absl::Status s = FromGrpcStatus(status);
      return absl::Status(
          s.code(),
          absl::StrCat(
              "the farm at ", options.server, ": ", s.message(),
              build_id.empty() ? "" : absl::StrCat(" (build ", build_id, ")")));
    }
    return absl::UnavailableError(
        absl::StrCat("the scheduler at ", options.server,
                     " ended the build without a result"));
  }
  if (last.code() != 0) {
    std::string error = last.error();
    auto first = Digest::FromProto(last.manifest());
    auto second = Digest::FromProto(last.rebuild_manifest());
    if (last.has_rebuild_manifest() && first.ok() && second.ok() &&
        *first != *second) {
      // Not reproducible: say where the two images part.
      absl::StatusOr<std::string> where =
          image::FirstDifference(images, *first, *second);
      absl::StrAppend(&error, ": ",
                      where.ok() ? *where
                                 : absl::StrCat("(comparing them: ",
                                                where.status().message(), ")"));
    }
    return absl::Status(static_cast<absl::StatusCode>(last.code()), error);
  }
  ASSIGN_OR_RETURN(Digest manifest, Digest::FromProto(last.manifest()));
  ASSIGN_OR_RETURN(image::ResolvedImage image, images->Load(manifest));
  engine::BuildResult result;
  result.image.config = image.image.config;
  result.image.layers = image.image.layers;
  result.image.diff_ids = image.image.diff_ids;
  result.manifest = image.manifest;
  result.steps_run = last.steps_run();
  result.steps_cached = last.steps_cached();
  result.provenance = last.provenance();
  if (auto rebuilt = Digest::FromProto(last.rebuild_manifest());
      last.has_rebuild_manifest() && rebuilt.ok()) {
    result.reproduced = rebuilt->hash();
  }
  for (const std::string& tag : request.tags) {
    RETURN_IF_ERROR(images->Tag(tag, manifest));
  }
  return result;
}

namespace {

std::unique_ptr<v1::Scheduler::Stub> Stub(const std::string& server) {
  return v1::Scheduler::NewStub(FarmChannel(server));
}

absl::Status FarmError(const std::string& server, const grpc::Status& status) {
  absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(),
                      absl::StrCat("the farm at ", server, ": ", s.message()));
}

std::string TimeText(double unix_seconds) {
  if (unix_seconds <= 0) return "-";
  return Rfc3339(static_cast<int64_t>(unix_seconds));
}

}  // namespace

absl::StatusOr<std::string> ListBuildsText(const std::string& server) {
  auto stub = Stub(server);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListBuildsResponse resp;
  grpc::Status st = stub->ListBuilds(&ctx, v1::ListBuildsRequest(), &resp);
  if (!st.ok()) return FarmError(server, st);
  return BuildsTable({resp.builds().begin(), resp.builds().end()});
}

std::string BuildsTable(const std::vector<v1::BuildSummary>& builds) {
  std::string out = absl::StrFormat(
      "%-24s %-10s %-7s %-13s %-20s %-20s %-19s %s\n", "BUILD", "STATE",
      "STAGES", "PLATFORM", "SUBMITTED", "FINISHED", "WHAT", "RESULT");
  for (const v1::BuildSummary& b : builds) {
    std::string result = b.error();
    if (result.empty() && b.has_manifest()) {
      result = absl::StrCat("sha256:", b.manifest().hash().substr(0, 12));
    }
    if (result.empty() && !b.waiting_for().empty()) {
      result = absl::StrCat("waiting for ", b.waiting_for());
    }
    // The first line of an error: the rest is the step's output.
    result = result.substr(0, result.find('\n'));
    // A Dockerfile's name, or "action <digest>" for a REAPI action.
    std::string what =
        b.dockerfile_name().empty() ? "Dockerfile" : b.dockerfile_name();
    absl::StrAppend(
        &out, absl::StrFormat("%-24s %-10s %-7s %-13s %-20s %-20s %-19s %s\n",
                              b.build_id(), b.state(),
                              absl::StrCat(b.stages_done(), "/", b.stages()),
                              b.platform().empty() ? "-" : b.platform(),
                              TimeText(b.submitted()), TimeText(b.finished()),
                              what, result));
  }
  return out;
}

absl::StatusOr<std::string> BuildInstance(const std::string& server,
                                          const std::string& build_id) {
  auto stub = Stub(server);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListBuildsResponse resp;
  grpc::Status st = stub->ListBuilds(&ctx, v1::ListBuildsRequest(), &resp);
  if (!st.ok()) return FarmError(server, st);
  for (const v1::BuildSummary& b : resp.builds()) {
    if (b.build_id() == build_id) return b.instance_name();
  }
  return absl::NotFoundError(
      absl::StrCat("build ", build_id, ": not among the farm's builds"));
}

absl::Status WatchBuild(
    const std::string& server, const std::string& build_id,
    const std::function<void(const engine::BuildEvent&)>& on_event) {
  auto stub = Stub(server);
  grpc::ClientContext ctx;
  v1::WatchBuildRequest req;
  req.set_build_id(build_id);
  auto stream = stub->WatchBuild(&ctx, req);
  v1::BuildUpdate update;
  bool finished = false;
  absl::Status outcome;
  while (stream->Read(&update)) {
    for (const v1::Event& e : update.events()) on_event(farmapi::FromWire(e));
    if (update.finished()) {
      finished = true;
      if (update.code() != 0) {
        outcome = absl::Status(static_cast<absl::StatusCode>(update.code()),
                               update.error());
      }
    }
  }
  grpc::Status st = stream->Finish();
  if (!finished) {
    return st.ok() ? absl::UnavailableError("the build stream ended early")
                   : FarmError(server, st);
  }
  return outcome;
}

namespace {

class SchedulerTagIndex : public image::TagIndex {
 public:
  SchedulerTagIndex(std::string server, std::string instance)
      : server_(std::move(server)),
        instance_(std::move(instance)),
        stub_(Stub(server_)) {}

  absl::Status Set(const image::ImageRecord& r) override {
    v1::SetImageRequest req;
    req.set_instance_name(instance_);
    v1::ImageTag* tag = req.mutable_image();
    tag->set_name(r.name);
    r.manifest.ToProto(tag->mutable_manifest());
    tag->set_size(r.size);
    tag->set_created(r.created);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::SetImageResponse resp;
    grpc::Status st = stub_->SetImage(&ctx, req, &resp);
    return st.ok() ? absl::OkStatus() : FarmError(server_, st);
  }

  absl::StatusOr<std::vector<image::ImageRecord>> List() override {
    v1::ListImagesRequest req;
    req.set_instance_name(instance_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::ListImagesResponse resp;
    grpc::Status st = stub_->ListImages(&ctx, req, &resp);
    if (!st.ok()) return FarmError(server_, st);
    std::vector<image::ImageRecord> out;
    for (const v1::ImageTag& tag : resp.images()) {
      image::ImageRecord r;
      r.name = tag.name();
      ASSIGN_OR_RETURN(r.manifest,
                       Digest::FromProto(tag.manifest(), "image.manifest"));
      r.size = tag.size();
      r.created = tag.created();
      out.push_back(std::move(r));
    }
    return out;
  }

  absl::Status Remove(const std::string& name) override {
    v1::RemoveImageRequest req;
    req.set_instance_name(instance_);
    req.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::RemoveImageResponse resp;
    grpc::Status st = stub_->RemoveImage(&ctx, req, &resp);
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      return absl::NotFoundError(st.error_message());
    }
    return st.ok() ? absl::OkStatus() : FarmError(server_, st);
  }

 private:
  std::string server_, instance_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
};

}  // namespace

std::unique_ptr<image::TagIndex> FarmTagIndex(const std::string& server,
                                              const std::string& instance) {
  return std::make_unique<SchedulerTagIndex>(server, instance);
}

absl::Status WriteTrace(const v1::BuildRecord& record,
                        const std::string& path) {
  const std::vector<v1::Event> events(record.events().begin(),
                                      record.events().end());
  const std::string text = stagefarm::json::Dump(
      buildview::TraceEvents(buildview::MakeView(record.build(), events)));
  if (path.empty() || path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return std::fflush(stdout) == 0
               ? absl::OkStatus()
               : absl::UnavailableError("writing the trace failed");
  }
  return WriteFileAtomically(path, text + "\n");
}

absl::StatusOr<v1::BuildRecord> GetBuildRecord(const std::string& server,
                                               const std::string& build_id) {
  auto stub = Stub(server);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetBuildRequest req;
  req.set_build_id(build_id);
  v1::BuildRecord record;
  grpc::Status st = stub->GetBuild(&ctx, req, &record);
  if (!st.ok()) return FarmError(server, st);
  return record;
}

absl::StatusOr<std::string> FarmCas(const std::string& server) {
  auto stub = Stub(server);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::FarmInfo info;
  grpc::Status st = stub->GetFarm(&ctx, v1::GetFarmRequest(), &info);
  if (!st.ok()) return FarmError(server, st);
  if (info.cas().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the farm at ", server,
        " does not say where its CAS is (start stagefarm-scheduler with "
        "--cas HOST:PORT, or pass --cas / set STAGEFARM_CAS)"));
  }
  return info.cas();
}

absl::Status CancelBuild(const std::string& server,
                         const std::string& build_id) {
  auto stub = Stub(server);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::CancelBuildRequest req;
  req.set_build_id(build_id);
  v1::CancelBuildResponse resp;
  grpc::Status st = stub->CancelBuild(&ctx, req, &resp);
  if (!st.ok()) return FarmError(server, st);
  return absl::OkStatus();
}

}  // namespace stagefarm::cli
