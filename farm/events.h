// Build events between the engine's form (worker::BuildEvent) and the wire
// form (stagefarm.v1.Event).
#ifndef STAGEFARM_FARM_EVENTS_H_
#define STAGEFARM_FARM_EVENTS_H_

#include "stagefarm/v1/farm.pb.h"
#include "worker/build_engine.h"

namespace stagefarm::farm {

v1::Event ToWire(const worker::BuildEvent& ev);
// Farm-only kinds (queued, stage-started, stage-done, retry) become kNote
// events whose text names the worker.
worker::BuildEvent FromWire(const v1::Event& ev);

}  // namespace stagefarm::farm

#endif  // STAGEFARM_FARM_EVENTS_H_
