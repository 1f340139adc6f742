#include "scheduler/sim.h"

#include "absl/strings/str_cat.h"

namespace stagefarm::scheduler::sim {

v1::BuildSpec Spec(const std::string& dockerfile) {
  v1::BuildSpec spec;
  spec.set_dockerfile(dockerfile);
  spec.set_dockerfile_name("Dockerfile");
  spec.set_compression("gzip");
  spec.mutable_context()->set_hash(std::string(64, 'a'));
  spec.mutable_context()->set_size_bytes(0);
  return spec;
}

Workers::Workers(std::shared_ptr<grpc::Channel> channel,
                 const std::string& name, int threads,
                 std::chrono::milliseconds work, int log_lines)
    : stub_(v1::Scheduler::NewStub(channel)),
      name_(name),
      work_(work),
      log_lines_(log_lines) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] { Run(i); });
  }
}

Workers::~Workers() { Stop(); }

void Workers::Stop() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Workers::Run(int index) {
  std::string me =
      threads_.size() > 1 ? absl::StrCat(name_, "-", index) : name_;
  while (!stop_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::LeaseRequest req;
    req.set_worker(me);
    req.set_wait_ms(100);
    v1::LeaseResponse resp;
    if (!stub_->Lease(&ctx, req, &resp).ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (!resp.has_task()) continue;
    if (work_.count() > 0) std::this_thread::sleep_for(work_);
    const std::string stage_name =
        absl::StrCat("stage-", resp.task().stage_index());
    for (int line = 0; line < log_lines_;) {
      v1::StageReport logs;
      logs.set_lease_id(resp.task().lease_id());
      logs.set_worker(me);
      for (int n = 0; n < 1000 && line < log_lines_; ++n, ++line) {
        v1::Event* e = logs.add_events();
        e->set_kind("log");
        e->set_stage(stage_name);
        e->set_step(1);
        e->set_text(absl::StrCat("line ", line,
                                 " of the step's output, about sixty bytes\n"));
      }
      grpc::ClientContext lctx;
      lctx.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
      v1::StageReportResponse lresp;
      if (!stub_->Report(&lctx, logs, &lresp).ok() || lresp.stop()) break;
    }
    v1::StageReport report;
    report.set_lease_id(resp.task().lease_id());
    report.set_worker(me);
    report.set_finished(true);
    report.set_image_state(
        absl::StrCat("{\"stage\":", resp.task().stage_index(), "}"));
    if (resp.task().assemble()) {
      report.mutable_manifest()->set_hash(std::string(64, 'b'));
      report.mutable_manifest()->set_size_bytes(1);
    }
    report.set_steps_run(1);
    v1::Event* e = report.add_events();
    e->set_kind("done");
    e->set_stage(stage_name);
    grpc::ClientContext rctx;
    rctx.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    v1::StageReportResponse rresp;
    if (stub_->Report(&rctx, report, &rresp).ok()) ++done_;
  }
}

namespace {

Outcome Follow(grpc::ClientReaderInterface<v1::BuildUpdate>* stream) {
  Outcome out;
  v1::BuildUpdate update;
  while (stream->Read(&update)) {
    if (out.build_id.empty()) out.build_id = update.build_id();
    for (const v1::Event& e : update.events()) out.events.push_back(e);
    if (update.finished()) out.last = update;
  }
  out.status = stream->Finish();
  return out;
}

}  // namespace

Outcome SubmitAndWait(v1::Scheduler::Stub* stub, const v1::BuildSpec& spec) {
  grpc::ClientContext ctx;
  v1::SubmitBuildRequest req;
  *req.mutable_spec() = spec;
  auto stream = stub->Build(&ctx, req);
  return Follow(stream.get());
}

Outcome Watch(v1::Scheduler::Stub* stub, const std::string& build_id) {
  grpc::ClientContext ctx;
  v1::WatchBuildRequest req;
  req.set_build_id(build_id);
  auto stream = stub->WatchBuild(&ctx, req);
  Outcome out = Follow(stream.get());
  if (out.build_id.empty()) out.build_id = build_id;
  return out;
}

}  // namespace stagefarm::scheduler::sim
