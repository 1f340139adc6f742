// Stage keys, stage results in the real stagefarm-cas, and the scheduler
// completing cached stages without workers.
#include "stagecache/stage_cache.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "platform/platform.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/sim.h"
#include "tests/cas_process.h"

namespace stagefarm::scheduler {
namespace {

using stagecache::LookupStage;
using stagecache::StageHit;
using stagecache::StageKey;
using stagecache::StoreStage;

constexpr char kTwoStages[] =
    "FROM scratch AS build\nCOPY a /a\nFROM scratch\nCOPY --from=build /a /a\n";

TEST(StageKey, CoversEveryInput) {
  v1::BuildSpec spec = sim::Spec(kTwoStages);
  (*spec.mutable_build_args())["A"] = "1";
  (*spec.mutable_build_args())["B"] = "2";
  std::string base = StageKey(spec, 0, false, {});
  EXPECT_EQ(base.substr(0, 7), "sha256:");
  EXPECT_EQ(base, StageKey(spec, 0, false, {}));
  // The order build args arrive in does not matter.
  v1::BuildSpec reordered = sim::Spec(kTwoStages);
  (*reordered.mutable_build_args())["B"] = "2";
  (*reordered.mutable_build_args())["A"] = "1";
  EXPECT_EQ(base, StageKey(reordered, 0, false, {}));
  std::vector<v1::BuildSpec> changed(8, spec);
  changed[0].set_dockerfile(std::string(kTwoStages) + "\n# comment\n");
  changed[1].mutable_context()->set_hash(std::string(64, 'e'));
  changed[2].set_dockerignore("*.log\n");
  (*changed[3].mutable_build_args())["A"] = "3";
  changed[4].set_compression("zstd");
  changed[5].set_has_source_date_epoch(true);
  (*changed[6].mutable_images())["busybox"].set_hash(std::string(64, 'f'));
  changed[7].set_compression_level(9);
  for (size_t i = 0; i < changed.size(); ++i) {
    EXPECT_NE(base, StageKey(changed[i], 0, false, {})) << i;
  }
  EXPECT_NE(base, StageKey(spec, 1, false, {}));
  EXPECT_NE(base, StageKey(spec, 0, true, {}));
  EXPECT_NE(base, StageKey(spec, 0, false, {"sha256:x"}));
  // Labels and the Dockerfile's name only shape the image or messages.
  v1::BuildSpec labelled = spec;
  (*labelled.mutable_labels())["l"] = "v";
  labelled.set_dockerfile_name("other/Dockerfile");
  EXPECT_EQ(base, StageKey(labelled, 0, false, {}));
}

class StageCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("stage-cache");
    auto cas = CasProcess::Start(CasBinaryPath(), dir_ + "/cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_.emplace(std::move(*cas));
    cas_client_ =
        std::make_unique<CasClient>(CasClient::Connect(cas_->address()), "");
  }
  void TearDown() override {
    cas_client_.reset();
    cas_.reset();
    std::filesystem::remove_all(dir_);
  }
  Digest PutLayer(const std::string& bytes) {
    EXPECT_TRUE(cas_client_->WriteString(bytes).ok());
    return Digest::Of(bytes);
  }
  std::string dir_;
  std::optional<CasProcess> cas_;
  std::unique_ptr<CasClient> cas_client_;
};

TEST_F(StageCacheTest, StoredResultIsFoundAndAMissingLayerIsAMiss) {
  std::string key = StageKey(sim::Spec(kTwoStages), 0, false, {});
  auto miss = LookupStage(cas_client_.get(), key);
  ASSERT_TRUE(miss.ok()) << miss.status();
  EXPECT_FALSE(miss->has_value());
  Digest layer = PutLayer("layer bytes");
  ASSERT_TRUE(
      StoreStage(cas_client_.get(), key, "{\"state\":1}", {layer}, 3).ok());
  auto hit = LookupStage(cas_client_.get(), key);
  ASSERT_TRUE(hit.ok()) << hit.status();
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ((*hit)->state, "{\"state\":1}");
  EXPECT_EQ((*hit)->steps, 3);
  // An entry naming a layer the CAS does not have is refused.
  std::string other = StageKey(sim::Spec(kTwoStages), 1, true, {key});
  absl::Status s = StoreStage(cas_client_.get(), other, "{}",
                              {Digest::Of("never stored")}, 1);
  auto gone = LookupStage(cas_client_.get(), other);
  EXPECT_TRUE(!s.ok() || (gone.ok() && !gone->has_value()));
}

TEST_F(StageCacheTest, SchedulerCompletesCachedStagesWithoutWorkers) {
  SchedulerOptions o;
  o.cas_address = cas_->address();
  auto service = SchedulerService::Create(o);
  ASSERT_TRUE(service.ok());
  grpc::ServerBuilder builder;
  builder.RegisterService(service->get());
  auto server = builder.BuildAndStart();
  auto stub = v1::Scheduler::NewStub(
      server->InProcessChannel(grpc::ChannelArguments()));
  auto lease = [&](int wait_ms) {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker("w");
    req.set_wait_ms(wait_ms);
    v1::LeaseResponse resp;
    EXPECT_TRUE(stub->Lease(&ctx, req, &resp).ok());
    return resp;
  };
  auto report = [&](const v1::StageTask& t, const std::string& state) {
    grpc::ClientContext ctx;
    v1::StageReport r;
    r.set_lease_id(t.lease_id());
    r.set_finished(true);
    r.set_image_state(state);
    r.set_steps_run(1);
    if (t.assemble()) {
      r.mutable_manifest()->set_hash(std::string(64, 'd'));
      r.mutable_manifest()->set_size_bytes(2);
    }
    v1::StageReportResponse resp;
    EXPECT_TRUE(stub->Report(&ctx, r, &resp).ok());
  };
  v1::BuildSpec spec = sim::Spec(kTwoStages);

  // First build: both stages go to a worker, each with its key.
  auto first = std::async(std::launch::async,
                          [&] { return sim::SubmitAndWait(stub.get(), spec); });
  v1::LeaseResponse a = lease(2000);
  ASSERT_TRUE(a.has_task());
  EXPECT_EQ(a.task().stage_index(), 0);
  // Keys are over the spec as the scheduler completed it (the platforms
  // written in).
  EXPECT_EQ(a.task().spec().target_platform(), platform::Host().String());
  EXPECT_EQ(a.task().stage_key(), StageKey(a.task().spec(), 0, false, {}));
  v1::BuildSpec arm = a.task().spec();
  arm.set_target_platform("linux/arm64");
  EXPECT_NE(StageKey(arm, 0, false, {}), a.task().stage_key());
  EXPECT_TRUE(a.task().cached_state().empty());
  // The worker stores what it made under the key (as stagefarm-worker does).
  Digest layer = PutLayer("stage 0 layer");
  ASSERT_TRUE(StoreStage(cas_client_.get(), a.task().stage_key(),
                         "{\"stage\":0}", {layer}, 1)
                  .ok());
  report(a.task(), "{\"stage\":0}");
  v1::LeaseResponse b = lease(2000);
  ASSERT_TRUE(b.has_task());
  EXPECT_EQ(b.task().stage_key(),
            StageKey(b.task().spec(), 1, true, {a.task().stage_key()}));
  report(b.task(), "{\"stage\":1}");
  EXPECT_EQ(first.get().last.code(), 0);

  // Same inputs, target not cached: stage 0 is done without a worker.
  auto second = std::async(
      std::launch::async, [&] { return sim::SubmitAndWait(stub.get(), spec); });
  v1::LeaseResponse c = lease(2000);
  ASSERT_TRUE(c.has_task());
  EXPECT_EQ(c.task().stage_index(), 1);
  EXPECT_EQ(c.task().dependencies().at(0), "{\"stage\":0}");
  ASSERT_TRUE(StoreStage(cas_client_.get(), c.task().stage_key(),
                         "{\"stage\":1}", {layer}, 1)
                  .ok());
  report(c.task(), "{\"stage\":1}");
  sim::Outcome o2 = second.get();
  EXPECT_EQ(o2.last.code(), 0);
  EXPECT_EQ(o2.last.steps_cached(), 1);

  // Both cached: only assembly, handed out with the cached state.
  auto third = std::async(std::launch::async,
                          [&] { return sim::SubmitAndWait(stub.get(), spec); });
  v1::LeaseResponse d = lease(2000);
  ASSERT_TRUE(d.has_task());
  EXPECT_EQ(d.task().stage_index(), 1);
  EXPECT_TRUE(d.task().assemble());
  EXPECT_EQ(d.task().cached_state(), "{\"stage\":1}");
  report(d.task(), "{\"stage\":1}");
  sim::Outcome o3 = third.get();
  EXPECT_EQ(o3.last.code(), 0);
  EXPECT_EQ(o3.last.steps_cached(), 2);
  EXPECT_FALSE(lease(100).has_task());

  // --no-cache looks nothing up.
  spec.set_no_cache(true);
  auto fourth = std::async(
      std::launch::async, [&] { return sim::SubmitAndWait(stub.get(), spec); });
  v1::LeaseResponse e = lease(2000);
  ASSERT_TRUE(e.has_task());
  EXPECT_EQ(e.task().stage_index(), 0);
  report(e.task(), "{\"stage\":0}");
  v1::LeaseResponse f = lease(2000);
  ASSERT_TRUE(f.has_task());
  EXPECT_TRUE(f.task().cached_state().empty());
  report(f.task(), "{\"stage\":1}");
  EXPECT_EQ(fourth.get().last.code(), 0);
  (*service)->Stop();
  server->Shutdown();
}

}  // namespace
}  // namespace stagefarm::scheduler
