// Build events between the engine's form (engine::BuildEvent) and the wire
// form (stagefarm.v1.Event).
#ifndef STAGEFARM_FARMAPI_EVENTS_H_
#define STAGEFARM_FARMAPI_EVENTS_H_

#include "engine/build_engine.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::farmapi {

v1::Event ToWire(const engine::BuildEvent& ev);
// Farm-only kinds (queued, stage-started, stage-done, retry) become kNote
// events whose text names the worker.
engine::BuildEvent FromWire(const v1::Event& ev);

}  // namespace stagefarm::farmapi

#endif  // STAGEFARM_FARMAPI_EVENTS_H_
