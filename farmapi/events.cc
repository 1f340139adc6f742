#include "farmapi/events.h"

#include "absl/strings/str_cat.h"

namespace stagefarm::farmapi {

using Kind = engine::BuildEvent::Kind;

v1::Event ToWire(const engine::BuildEvent& ev) {
  v1::Event e;
  switch (ev.kind) {
    case Kind::kStepStarted:
      e.set_kind("started");
      break;
    case Kind::kStepCached:
      e.set_kind("cached");
      break;
    case Kind::kStepDone:
      e.set_kind("done");
      break;
    case Kind::kLog:
      e.set_kind("log");
      break;
    case Kind::kStepFailed:
      e.set_kind("failed");
      break;
    case Kind::kStepCancelled:
      e.set_kind("cancelled");
      break;
    case Kind::kNote:
      e.set_kind("note");
      break;
  }
  e.set_stage(ev.stage);
  e.set_step(ev.step);
  e.set_steps(ev.steps);
  e.set_text(ev.text);
  e.set_seconds(ev.seconds);
  if (ev.full_log) ev.full_log->ToProto(e.mutable_full_log());
  e.set_line(ev.line);
  e.set_key(ev.key);
  for (const cachekey::KeyPart& p : ev.key_parts) {
    v1::KeyPart* w = e.add_key_parts();
    w->set_name(p.name);
    w->set_fingerprint(p.fingerprint);
  }
  if (ev.layer_bytes >= 0) {
    e.set_has_layer(true);
    e.set_layer_bytes(ev.layer_bytes);
  }
  return e;
}

engine::BuildEvent FromWire(const v1::Event& e) {
  engine::BuildEvent ev;
  ev.stage = e.stage();
  ev.step = e.step();
  ev.steps = e.steps();
  ev.text = e.text();
  ev.seconds = e.seconds();
  if (e.has_full_log()) {
    absl::StatusOr<Digest> d = Digest::FromProto(e.full_log());
    if (d.ok()) ev.full_log = *d;
  }
  ev.line = e.line();
  ev.key = e.key();
  for (const v1::KeyPart& p : e.key_parts()) {
    ev.key_parts.push_back({p.name(), p.fingerprint()});
  }
  ev.layer_bytes = e.has_layer() ? e.layer_bytes() : -1;
  const std::string& k = e.kind();
  if (k == "started") {
    ev.kind = Kind::kStepStarted;
  } else if (k == "cached") {
    ev.kind = Kind::kStepCached;
  } else if (k == "done") {
    ev.kind = Kind::kStepDone;
  } else if (k == "log") {
    ev.kind = Kind::kLog;
  } else if (k == "failed") {
    ev.kind = Kind::kStepFailed;
  } else if (k == "cancelled") {
    ev.kind = Kind::kStepCancelled;
  } else {
    ev.kind = Kind::kNote;
    if (ev.stage.empty()) ev.stage = "farm";
    if (k == "stage-started") ev.text = absl::StrCat("started ", e.text());
    if (k == "stage-done") ev.text = absl::StrCat("finished ", e.text());
  }
  return ev;
}

}  // namespace stagefarm::farmapi
