#include "cli/build_record.h"

#include <random>

#include "absl/strings/escaping.h"
#include "common/clock.h"
#include "farmapi/events.h"

namespace stagefarm::cli {
namespace {

std::string NewId() {
  std::random_device random;
  std::string bytes(12, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return absl::BytesToHexString(bytes);
}

bool IsStepEvent(engine::BuildEvent::Kind kind) {
  using Kind = engine::BuildEvent::Kind;
  return kind == Kind::kStepStarted || kind == Kind::kStepCached ||
         kind == Kind::kStepDone || kind == Kind::kStepFailed ||
         kind == Kind::kStepCancelled;
}

}  // namespace

BuildRecorder::BuildRecorder(const engine::BuildRequest& request,
                             std::string worker,
                             std::function<void(const v1::BuildRecord&)> save)
    : worker_(std::move(worker)), save_(std::move(save)) {
  absl::MutexLock lock(&mu_);
  v1::StoredBuild* b = record_.mutable_build();
  b->set_build_id(NewId());
  b->set_submitted(UnixSeconds());
  b->set_created(Rfc3339(static_cast<int64_t>(b->submitted())));
  b->mutable_spec()->set_dockerfile_name(request.dockerfile_name);
  b->mutable_spec()->set_target(request.plan_options.target);
  b->mutable_spec()->set_target_platform(request.plan_options.target_platform);
  b->mutable_spec()->set_dockerfile(request.dockerfile);
  b->mutable_spec()->set_no_cache(request.no_cache);
  for (const std::string& tag : request.tags) b->mutable_spec()->add_tags(tag);
  last_save_ = absl::Now();
  if (save_) save_(record_);
}

void BuildRecorder::OnEvent(const engine::BuildEvent& ev) {
  v1::Event e = farmapi::ToWire(ev);
  e.set_unix_time(UnixSeconds());
  e.set_worker(worker_);
  absl::MutexLock lock(&mu_);
  if (IsStepEvent(ev.kind) && !stages_.count(ev.stage)) {
    const int index = static_cast<int>(stages_.size());
    stages_[ev.stage] = index;
    v1::StoredStage* st = record_.mutable_build()->add_stages();
    st->set_index(index);
    st->set_display(ev.stage);
    st->set_base_stage(-1);
    st->set_status(2);  // running
    st->set_worker(worker_);
    st->set_attempts(1);
    st->set_platform(record_.build().spec().target_platform());
  }
  *record_.add_events() = std::move(e);
  using Kind = engine::BuildEvent::Kind;
  const bool step_ended =
      ev.kind == Kind::kStepDone || ev.kind == Kind::kStepFailed ||
      ev.kind == Kind::kStepCancelled || ev.kind == Kind::kStepCached;
  if (save_ && step_ended && absl::Now() - last_save_ >= absl::Seconds(1)) {
    last_save_ = absl::Now();
    save_(record_);
  }
}

v1::BuildRecord BuildRecorder::Finish(const absl::Status& status,
                                      const engine::BuildResult* result) {
  absl::MutexLock lock(&mu_);
  v1::StoredBuild* b = record_.mutable_build();
  b->set_finished(true);
  b->set_finished_at(UnixSeconds());
  b->set_code(static_cast<int>(status.code()));
  b->set_error(std::string(status.message()));
  if (status.ok()) {
    for (v1::StoredStage& st : *b->mutable_stages()) st.set_status(3);
  }
  if (result != nullptr) {
    result->manifest.digest.ToProto(b->mutable_manifest());
    b->set_steps_run(result->steps_run);
    b->set_steps_cached(result->steps_cached);
  } else {
    // A failed build has no result: count what its events say.
    int run = 0, cached = 0;
    for (const v1::Event& e : record_.events()) {
      run += e.kind() == "done" || e.kind() == "failed";
      cached += e.kind() == "cached";
    }
    b->set_steps_run(run);
    b->set_steps_cached(cached);
  }
  if (save_) save_(record_);
  return record_;
}

}  // namespace stagefarm::cli
