#include "scheduler/build_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "image/oci.h"
#include "nlohmann/json.hpp"

namespace stagefarm::scheduler {

size_t EventBytes(const v1::Event& e) {
  return sizeof(v1::Event) + e.ByteSizeLong();
}

void BuildState::AddReported(v1::Event e, size_t report_start) {
  if (e.kind() == "log" && events.size() > report_start) {
    v1::Event& last = events.back();
    if (last.kind() == "log" && last.stage() == e.stage() &&
        last.step() == e.step() && last.worker() == e.worker() &&
        last.text().size() + e.text().size() <= kMergedLogBytes) {
      event_bytes -= EventBytes(last);
      last.mutable_text()->append(e.text());
      event_bytes += EventBytes(last);
      return;
    }
  }
  AddEvent(std::move(e));
}

int64_t ImageStateLayerBytes(const std::string& image_state_json) {
  absl::StatusOr<nlohmann::json> j =
      image::ParseJson(image_state_json, "stage result");
  if (!j.ok() || !j->is_object() || !j->contains("layers") ||
      !(*j)["layers"].is_array()) {
    return 0;
  }
  int64_t total = 0;
  for (const nlohmann::json& layer : (*j)["layers"]) {
    absl::StatusOr<image::Descriptor> d =
        image::ParseDescriptor(layer, "stage result layer");
    if (d.ok()) total += d->digest.size();
  }
  return total;
}

std::string PreferredWorker(const BuildState& b, const StageState& st) {
  std::string best;
  int64_t best_bytes = -1;
  auto consider = [&](int index) {
    auto it = b.stages.find(index);
    if (it == b.stages.end() || it->second.worker.empty()) return;
    int64_t bytes = ImageStateLayerBytes(it->second.result);
    if (bytes > best_bytes) {
      best = it->second.worker;
      best_bytes = bytes;
    }
  };
  if (st.base_stage >= 0) consider(st.base_stage);
  for (int dep : st.depends_on) {
    if (dep != st.base_stage) consider(dep);
  }
  return best;
}

std::string BaseImageKey(const BuildState& b, const StageState& st) {
  if (st.base_image.empty()) return "";
  return absl::StrCat(b.spec.instance_name(), "\n", st.platform, "\n",
                      st.base_image);
}

v1::StoredBuild ToRecord(
    const BuildState& b,
    const std::function<std::string(const std::string& lease)>& lease_worker) {
  v1::StoredBuild stored;
  stored.set_build_id(b.id);
  *stored.mutable_spec() = b.spec;
  stored.mutable_spec()->clear_secrets();  // never on disk
  stored.set_had_secrets(!b.spec.secrets().empty() || b.had_secrets);
  stored.set_tenant(b.tenant);
  stored.set_created(b.created);
  stored.set_target(b.target);
  for (const auto& [index, st] : b.stages) {
    v1::StoredStage* ss = stored.add_stages();
    ss->set_index(index);
    ss->set_status(static_cast<int>(st.status));
    for (int d : st.depends_on) ss->add_depends_on(d);
    ss->set_base_stage(st.base_stage);
    ss->set_display(st.display);
    ss->set_attempts(st.attempts);
    ss->set_result(st.result);
    ss->set_key(st.key);
    ss->set_cached(st.cached);
    ss->set_platform(st.platform);
    ss->set_avoid_worker(st.avoid_worker);
    ss->set_waiting_for(st.waiting_for);
    for (const std::string& d : st.worker_deaths) ss->add_worker_deaths(d);
    if (st.status == StageStatus::kLeased) {
      ss->set_lease_id(st.lease);
      ss->set_worker(lease_worker(st.lease));
    } else {
      ss->set_worker(st.worker);
    }
  }
  stored.set_finished(b.finished);
  stored.set_code(b.code);
  stored.set_error(b.error);
  if (b.result.has_manifest()) {
    *stored.mutable_manifest() = b.result.manifest();
  }
  stored.set_provenance(b.result.provenance());
  stored.set_execute_response(b.result.execute_response());
  if (b.result.has_rebuild_manifest()) {
    *stored.mutable_rebuild_manifest() = b.result.rebuild_manifest();
  }
  stored.set_rebuild_id(b.rebuild_id);
  stored.set_verify_of(b.verify_of);
  stored.set_steps_run(b.steps_run);
  stored.set_steps_cached(b.steps_cached);
  stored.set_submitted(b.submitted);
  stored.set_finished_at(b.finished_at);
  stored.set_events(static_cast<int64_t>(b.events.size()));
  return stored;
}

std::shared_ptr<BuildState> FromRecord(const v1::StoredBuild& stored,
                                       std::vector<v1::Event> events) {
  auto b = std::make_shared<BuildState>();
  b->id = stored.build_id();
  b->spec = stored.spec();
  b->created = stored.created();
  b->target = stored.target();
  b->finished = stored.finished();
  b->code = stored.code();
  b->error = stored.error();
  if (stored.has_manifest()) *b->result.mutable_manifest() = stored.manifest();
  b->result.set_provenance(stored.provenance());
  b->result.set_execute_response(stored.execute_response());
  if (stored.has_rebuild_manifest()) {
    *b->result.mutable_rebuild_manifest() = stored.rebuild_manifest();
  }
  b->rebuild_id = stored.rebuild_id();
  b->verify_of = stored.verify_of();
  b->steps_run = stored.steps_run();
  b->steps_cached = stored.steps_cached();
  b->submitted = stored.submitted();
  b->finished_at = stored.finished_at();
  b->had_secrets = stored.had_secrets();
  b->tenant = stored.tenant();
  for (const v1::StoredStage& ss : stored.stages()) {
    StageState& st = b->stages[ss.index()];
    st.status = static_cast<StageStatus>(
        std::clamp(ss.status(), 0, static_cast<int>(StageStatus::kDone)));
    st.depends_on.assign(ss.depends_on().begin(), ss.depends_on().end());
    st.base_stage = ss.base_stage();
    st.display = ss.display();
    st.worker = ss.worker();
    st.attempts = ss.attempts();
    st.lease = ss.lease_id();
    st.result = ss.result();
    st.key = ss.key();
    st.cached = ss.cached();
    st.platform = ss.platform();
    st.avoid_worker = ss.avoid_worker();
    st.worker_deaths = {ss.worker_deaths().begin(), ss.worker_deaths().end()};
  }
  b->events = std::move(events);
  for (const v1::Event& e : b->events) b->event_bytes += EventBytes(e);
  b->events_saved = b->events.size();
  return b;
}

}  // namespace stagefarm::scheduler
