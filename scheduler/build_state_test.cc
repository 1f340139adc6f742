#include "scheduler/build_state.h"

#include "gtest/gtest.h"

namespace stagefarm::scheduler {
namespace {

void Fill(BuildState& b) {
  b.id = "b1";
  b.spec.set_dockerfile("FROM scratch\n");
  (*b.spec.mutable_secrets())["token"] = "s3cret";
  b.created = "2026-01-02T03:04:05Z";
  b.target = 2;
  b.finished = true;
  b.code = 9;
  b.error = "failed";
  b.result.mutable_manifest()->set_hash(std::string(64, 'a'));
  b.steps_run = 4;
  b.steps_cached = 3;
  b.submitted = 10.5;
  b.finished_at = 12.25;
  b.tenant = "team-a";
  b.result.set_provenance("{\"payloadType\":\"x\"}");
  b.result.set_execute_response(std::string("\x0a\x02\x08\x01", 4));
  b.result.mutable_rebuild_manifest()->set_hash(std::string(64, 'b'));
  b.rebuild_id = "r1";
  b.verify_of = "v0";
  StageState& done = b.stages[0];
  done.status = StageStatus::kDone;
  done.display = "builder";
  done.worker = "w1";
  done.attempts = 2;
  done.result = "{}";
  done.key = "sha256:k";
  done.cached = true;
  done.platform = "linux/arm64";
  done.avoid_worker = "w0";
  StageState& leased = b.stages[2];
  leased.status = StageStatus::kLeased;
  leased.depends_on = {0};
  leased.base_stage = 0;
  leased.lease = "lease-7";
  v1::Event e;
  e.set_kind("queued");
  b.events = {e, e};
}

TEST(BuildStateTest, RecordRoundTripKeepsTheBuildButNotItsSecrets) {
  BuildState in;
  Fill(in);
  v1::StoredBuild stored = ToRecord(in, [](const std::string& lease) {
    return lease == "lease-7" ? std::string("w2") : std::string();
  });
  EXPECT_TRUE(stored.spec().secrets().empty());
  EXPECT_TRUE(stored.had_secrets());
  EXPECT_EQ(stored.events(), 2);
  std::shared_ptr<BuildState> out = FromRecord(stored, in.events);
  EXPECT_EQ(out->id, in.id);
  EXPECT_EQ(out->spec.dockerfile(), in.spec.dockerfile());
  EXPECT_EQ(out->created, in.created);
  EXPECT_EQ(out->target, in.target);
  EXPECT_EQ(out->finished, in.finished);
  EXPECT_EQ(out->code, in.code);
  EXPECT_EQ(out->error, in.error);
  EXPECT_EQ(out->result.manifest().hash(), in.result.manifest().hash());
  EXPECT_EQ(out->steps_run, in.steps_run);
  EXPECT_EQ(out->steps_cached, in.steps_cached);
  EXPECT_EQ(out->submitted, in.submitted);
  EXPECT_EQ(out->finished_at, in.finished_at);
  EXPECT_TRUE(out->had_secrets);
  EXPECT_EQ(out->tenant, in.tenant);
  EXPECT_EQ(out->result.provenance(), in.result.provenance());
  EXPECT_EQ(out->result.execute_response(), in.result.execute_response());
  EXPECT_EQ(out->result.rebuild_manifest().hash(), std::string(64, 'b'));
  EXPECT_EQ(out->rebuild_id, "r1");
  EXPECT_EQ(out->verify_of, "v0");
  EXPECT_EQ(out->stages[0].avoid_worker, "w0");
  EXPECT_EQ(out->events.size(), 2u);
  EXPECT_EQ(out->events_saved, 2u);
  ASSERT_EQ(out->stages.size(), 2u);
  const StageState& done = out->stages[0];
  EXPECT_EQ(done.status, StageStatus::kDone);
  EXPECT_EQ(done.display, "builder");
  EXPECT_EQ(done.worker, "w1");
  EXPECT_EQ(done.attempts, 2);
  EXPECT_EQ(done.result, "{}");
  EXPECT_EQ(done.key, "sha256:k");
  EXPECT_TRUE(done.cached);
  EXPECT_EQ(done.platform, "linux/arm64");
  const StageState& leased = out->stages[2];
  EXPECT_EQ(leased.status, StageStatus::kLeased);
  EXPECT_EQ(leased.depends_on, std::vector<int>{0});
  EXPECT_EQ(leased.base_stage, 0);
  EXPECT_EQ(leased.lease, "lease-7");
  EXPECT_EQ(leased.worker, "w2");  // the lease's worker
}

std::string StateWithLayers(std::initializer_list<int64_t> sizes) {
  std::string layers;
  for (int64_t size : sizes) {
    if (!layers.empty()) layers += ",";
    layers +=
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
        "\"digest\":\"sha256:" +
        std::string(64, 'c') + "\",\"size\":" + std::to_string(size) + "}";
  }
  return "{\"config\":{},\"diff_ids\":[],\"key\":\"k\",\"layers\":[" + layers +
         "]}";
}

TEST(BuildStateTest, LayerBytesOfAnImageState) {
  EXPECT_EQ(ImageStateLayerBytes(StateWithLayers({100, 250})), 350);
  EXPECT_EQ(ImageStateLayerBytes(StateWithLayers({})), 0);
  EXPECT_EQ(ImageStateLayerBytes("not json"), 0);
  EXPECT_EQ(ImageStateLayerBytes("{\"layers\":7}"), 0);
}

TEST(BuildStateTest, AStagePrefersTheWorkerHoldingMostOfWhatItNeeds) {
  BuildState b;
  StageState& sdk = b.stages[0];  // a heavy builder
  sdk.status = StageStatus::kDone;
  sdk.worker = "w-sdk";
  sdk.result = StateWithLayers({200000000, 5000});
  StageState& small = b.stages[1];
  small.status = StageStatus::kDone;
  small.worker = "w-small";
  small.result = StateWithLayers({700000});
  StageState& cached = b.stages[2];  // from the stage cache: no worker
  cached.status = StageStatus::kDone;
  cached.result = StateWithLayers({900000000});
  // FROM scratch, COPY --from each: the builder's worker.
  StageState final_stage;
  final_stage.depends_on = {0, 1, 2};
  EXPECT_EQ(PreferredWorker(b, final_stage), "w-sdk");
  // FROM the small stage, COPY --from the builder: still the builder's.
  final_stage.base_stage = 1;
  EXPECT_EQ(PreferredWorker(b, final_stage), "w-sdk");
  // Only the small one: its worker; a tie goes to the base.
  final_stage.depends_on = {1};
  EXPECT_EQ(PreferredWorker(b, final_stage), "w-small");
  sdk.result = StateWithLayers({700000});
  final_stage.depends_on = {0, 1};
  EXPECT_EQ(PreferredWorker(b, final_stage), "w-small");
  // Nothing a worker ran: no preference.
  final_stage.base_stage = -1;
  final_stage.depends_on = {2};
  EXPECT_EQ(PreferredWorker(b, final_stage), "");
}

TEST(BuildStateTest, StatusOutOfRangeIsClamped) {
  v1::StoredBuild stored;
  stored.add_stages()->set_status(99);
  auto high = stored.add_stages();
  high->set_index(1);
  high->set_status(-3);
  std::shared_ptr<BuildState> b = FromRecord(stored, {});
  EXPECT_EQ(b->stages[0].status, StageStatus::kDone);
  EXPECT_EQ(b->stages[1].status, StageStatus::kWaiting);
}

}  // namespace
}  // namespace stagefarm::scheduler
