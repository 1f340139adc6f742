// REAPI actions in the scheduler: an Execute request becomes a build of one
// stage whose spec carries the action (BuildSpec.action), so actions share
// the queue, leases, retries, --state, listing and metrics with Dockerfile
// builds. Part of SchedulerService (scheduler_service.h).
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/cas_client.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "image/oci.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {
namespace {

// What an action's platform properties ask for.
struct ActionPlatform {
  std::string image;  // container-image, without "docker://"
  bool network = false;
};

// Properties a farm honours; others are refused rather than ignored (an
// action must not run somewhere it did not ask for).
absl::StatusOr<ActionPlatform> ParsePlatform(const reapi::Platform& platform,
                                             absl::string_view field) {
  ActionPlatform out;
  for (const auto& p : platform.properties()) {
    const std::string& name = p.name();
    const std::string& value = p.value();
    if (name == "container-image") {
      out.image = std::string(absl::StripPrefix(value, "docker://"));
      if (out.image.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": container-image is empty"));
      }
    } else if (name == "network" || name == "dockerNetwork") {
      if (value == "standard") {
        out.network = true;
      } else if (value != "none" && value != "off") {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": ", name, "=", value,
                         " is not supported (standard, none or off)"));
      }
    } else if (name == "OSFamily") {
      if (value != "Linux" && value != "linux") {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ": OSFamily=", value, ": this farm runs Linux"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": the platform property \"", name,
          "\" is not supported (container-image, network, dockerNetwork, "
          "OSFamily)"));
    }
  }
  return out;
}

// Reads and parses a message the request names.
template <typename Message>
absl::Status ReadMessage(CasClient* cas, const Digest& digest, const char* what,
                         Message* out) {
  absl::StatusOr<std::string> bytes = cas->ReadString(digest);
  if (absl::IsNotFound(bytes.status())) {
    return MissingBlobs({digest},
                        absl::StrCat("the ", what, " ", digest.ToString(),
                                     " is not in the CAS"));
  }
  if (!bytes.ok()) {
    return absl::Status(
        bytes.status().code(),
        absl::StrCat("reading the ", what, " ", digest.ToString(), ": ",
                     bytes.status().message()));
  }
  if (!out->ParseFromString(*bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " ", digest.ToString(), " does not parse"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SchedulerService::ActionStart> SchedulerService::StartAction(
    grpc::ServerContext* context, const reapi::ExecuteRequest& request) {
  ASSIGN_OR_RETURN(const Tenant* caller, Caller(context));
  const std::string& instance = request.instance_name();
  if (caller != nullptr) {
    RETURN_IF_ERROR(Tenants::CheckInstance(*caller, instance));
  }
  ASSIGN_OR_RETURN(Digest action_digest,
                   Digest::FromProto(request.action_digest(), "action_digest"));
  if (!cas_) {
    return absl::FailedPreconditionError(
        "this scheduler has no --cas: it cannot execute actions");
  }
  CasClient cas(*cas_, instance);
  ActionStart start;
  if (!request.skip_cache_lookup()) {
    absl::StatusOr<reapi::ActionResult> hit =
        cas.GetActionResult(action_digest);
    if (hit.ok()) {
      start.cached.emplace();
      *start.cached->mutable_result() = *std::move(hit);
      start.cached->set_cached_result(true);
      ++action_cache_hits_;
      return start;
    }
  }
  reapi::Action action;
  RETURN_IF_ERROR(ReadMessage(&cas, action_digest, "Action", &action));
  ASSIGN_OR_RETURN(
      Digest command_digest,
      Digest::FromProto(action.command_digest(), "Action.command_digest"));
  reapi::Command command;
  RETURN_IF_ERROR(ReadMessage(&cas, command_digest, "Command", &command));
  RETURN_IF_ERROR(
      Digest::FromProto(action.input_root_digest(), "Action.input_root_digest")
          .status());
  if (command.arguments().empty()) {
    return absl::InvalidArgumentError("Command.arguments: empty");
  }
  // REAPI 2.2 moved the platform to the Action; older clients (Bazel 4)
  // set it on the Command.
  const bool on_action = action.platform().properties_size() > 0;
  ASSIGN_OR_RETURN(
      ActionPlatform platform,
      ParsePlatform(on_action ? action.platform() : command.platform(),
                    on_action ? "Action.platform" : "Command.platform"));
  std::string image_name =
      platform.image.empty() ? options_.action_image : platform.image;
  if (image_name.empty()) {
    return absl::FailedPreconditionError(
        "the action names no container image (platform property "
        "container-image) and this scheduler has no --action-image");
  }
  absl::StatusOr<std::string> normalized =
      image::NormalizeReference(image_name);
  if (!normalized.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("container-image \"", image_name,
                     "\": ", normalized.status().message()));
  }

  v1::BuildSpec spec;
  spec.set_instance_name(instance);
  spec.set_dockerfile_name(
      absl::StrCat("action ", action_digest.hash().substr(0, 12)));
  v1::RemoteAction* ra = spec.mutable_action();
  action_digest.ToProto(ra->mutable_action_digest());
  ra->set_container_image(*normalized);
  ra->set_network(platform.network);
  ra->set_do_not_cache(action.do_not_cache());
  const bool may_join = !request.skip_cache_lookup() && !action.do_not_cache();

  absl::MutexLock lock(&mu_);
  std::optional<v1::ImageTag> image = images_.Get(instance, *normalized);
  if (!image) {
    return absl::FailedPreconditionError(absl::StrCat(
        "container-image ", *normalized,
        " is not in the farm's image index for instance \"", instance,
        "\" (build it with `stagefarm build --server ... -t NAME`, or pull "
        "it with `stagefarm pull --server ...`)"));
  }
  *ra->mutable_image_manifest() = image->manifest();
  if (may_join) {
    // Two clients asking for the same action share one run.
    auto same = running_actions_.find(ActionJoinKey(spec));
    if (same != running_actions_.end()) {
      for (BuildState* other : same->second) {
        if (!Sees(caller, *other)) continue;
        start.build = builds_.at(other->id);
        ++actions_joined_;
        return start;
      }
    }
  }
  RETURN_IF_ERROR(Admit(caller));
  auto b = std::make_shared<BuildState>();
  b->id = RandomId();
  b->spec = std::move(spec);
  b->created = Rfc3339(static_cast<int64_t>(time(nullptr)));
  b->target = 0;
  b->submitted = UnixNow();
  if (caller != nullptr) b->tenant = caller->name;
  StageState& st = b->stages[0];
  std::string program = command.arguments(0);
  st.display = absl::StrCat(program.substr(program.rfind('/') + 1), " (",
                            action_digest.hash().substr(0, 12), ")");
  AddBuild(b);
  ++builds_submitted_;
  ++actions_queued_;
  LogInfo("action-submitted", {{"build", b->id},
                               {"tenant", b->tenant},
                               {"instance", instance},
                               {"action", action_digest.ToString()}});
  Event(b.get(), "queued", "",
        absl::StrCat("action ", action_digest.ToString(), " in ", *normalized),
        "");
  QueueReady(b);
  absl::Status saved = Save(b.get());
  if (!saved.ok()) {
    b->finished = true;
    EraseBuild(b->id);
    return saved;
  }
  start.build = std::move(b);
  return start;
}

std::string SchedulerService::ActionJoinKey(const v1::BuildSpec& spec) {
  if (!spec.has_action() || spec.action().do_not_cache()) return "";
  const auto& d = spec.action().action_digest();
  return absl::StrCat(spec.instance_name(), "\n", d.hash(), "/",
                      d.size_bytes());
}

absl::StatusOr<std::shared_ptr<BuildState>> SchedulerService::FindAction(
    grpc::ServerContext* context, const std::string& operation) {
  ASSIGN_OR_RETURN(const Tenant* caller, Caller(context));
  absl::string_view id = operation;
  if (!absl::ConsumePrefix(&id, kOperationPrefix)) {
    return absl::NotFoundError(
        absl::StrCat("no operation named \"", operation, "\""));
  }
  absl::MutexLock lock(&mu_);
  auto it = builds_.find(std::string(id));
  if (it == builds_.end() || !it->second->spec.has_action() ||
      !Sees(caller, *it->second)) {
    return absl::NotFoundError(absl::StrCat(
        "no operation named \"", operation,
        "\" (finished long ago, or never here); execute the action again"));
  }
  return it->second;
}

google::longrunning::Operation SchedulerService::OperationOf(
    const BuildState& b) {
  google::longrunning::Operation op;
  op.set_name(absl::StrCat(kOperationPrefix, b.id));
  reapi::ExecuteOperationMetadata metadata;
  *metadata.mutable_action_digest() = b.spec.action().action_digest();
  metadata.set_stage(reapi::ExecutionStage::QUEUED);
  auto st = b.stages.find(0);
  if (b.finished) {
    metadata.set_stage(reapi::ExecutionStage::COMPLETED);
    reapi::ExecuteResponse response;
    if (b.code == 0) {
      (void)response.ParseFromString(b.result.execute_response());
    } else {
      response.mutable_status()->set_code(b.code);
      response.mutable_status()->set_message(b.error);
    }
    op.set_done(true);
    op.mutable_response()->PackFrom(response);
  } else if (st != b.stages.end() &&
             st->second.status == StageStatus::kLeased) {
    metadata.set_stage(reapi::ExecutionStage::EXECUTING);
  }
  op.mutable_metadata()->PackFrom(metadata);
  return op;
}

grpc::Status SchedulerService::FollowAction(
    grpc::ServerContext* context, const std::shared_ptr<BuildState>& b,
    const std::function<bool(const google::longrunning::Operation&)>& write) {
  auto last_stage = reapi::ExecutionStage::UNKNOWN;
  absl::Time last_write = absl::InfinitePast();
  while (true) {
    google::longrunning::Operation op;
    {
      absl::MutexLock lock(&mu_);
      absl::Time until = absl::Now() + absl::Seconds(1);
      auto executing = [&] {
        mu_.AssertHeld();
        auto st = b->stages.find(0);
        return st != b->stages.end() &&
               st->second.status == StageStatus::kLeased;
      };
      // Woken by the build's events (a lease, the end) or once a second.
      while (last_stage != reapi::ExecutionStage::UNKNOWN && !b->finished &&
             !stopping_ &&
             !(last_stage == reapi::ExecutionStage::QUEUED && executing())) {
        if (b->cv.WaitWithDeadline(&mu_, until)) break;
      }
      if (stopping_ && !b->finished && HasState()) {
        // The action goes on when the scheduler is back; the client asks
        // again with WaitExecution.
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the scheduler is restarting");
      }
      if (stopping_ && !b->finished) {
        Finish(b.get(), static_cast<int>(grpc::StatusCode::UNAVAILABLE),
               "the scheduler is shutting down");
      }
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      op = OperationOf(*b);
    }
    reapi::ExecuteOperationMetadata metadata;
    op.metadata().UnpackTo(&metadata);
    if (metadata.stage() == last_stage &&
        absl::Now() - last_write < absl::Seconds(10)) {
      continue;
    }
    if (!write(op)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    last_stage = metadata.stage();
    last_write = absl::Now();
    if (op.done()) return grpc::Status::OK;
  }
}

absl::StatusOr<google::longrunning::Operation> SchedulerService::GetOperation(
    grpc::ServerContext* context, const std::string& operation) {
  ASSIGN_OR_RETURN(std::shared_ptr<BuildState> b,
                   FindAction(context, operation));
  absl::MutexLock lock(&mu_);
  return OperationOf(*b);
}

absl::Status SchedulerService::CancelOperation(grpc::ServerContext* context,
                                               const std::string& operation) {
  ASSIGN_OR_RETURN(std::shared_ptr<BuildState> b,
                   FindAction(context, operation));
  absl::MutexLock lock(&mu_);
  if (b->finished) return absl::OkStatus();
  Finish(b.get(), static_cast<int>(grpc::StatusCode::CANCELLED),
         "the operation was cancelled");
  return absl::OkStatus();
}

}  // namespace stagefarm::scheduler
