// Simulated farm participants for the scheduler's tests and benchmark:
// workers that lease stages over the real scheduler API and report them
// done (or failed) at once with a made-up result, and a client call that
// submits a build and follows it to the end. Nothing here runs a step.
#ifndef STAGEFARM_SCHEDULER_SIM_H_
#define STAGEFARM_SCHEDULER_SIM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::scheduler::sim {

// A BuildSpec for `dockerfile` with a syntactically valid context digest.
v1::BuildSpec Spec(const std::string& dockerfile);

// Leases and completes stages on `threads` threads until Stop().
class Workers {
 public:
  // Each stage, before it is reported done, reports `log_lines` lines of
  // output, one "log" event a line, in reports of up to 1,000 events.
  Workers(std::shared_ptr<grpc::Channel> channel, const std::string& name,
          int threads, std::chrono::milliseconds work = {}, int log_lines = 0);
  ~Workers();
  void Stop();
  // Stages completed so far.
  int64_t done() const { return done_.load(); }

 private:
  void Run(int index);
  std::unique_ptr<v1::Scheduler::Stub> stub_;
  std::string name_;
  std::chrono::milliseconds work_;
  int log_lines_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> done_{0};
  std::vector<std::thread> threads_;
};

struct Outcome {
  grpc::Status status;   // of the stream
  v1::BuildUpdate last;  // the finished update, if any
  std::vector<v1::Event> events;
  std::string build_id;
};

// Submits `spec` and reads the build's stream to its end.
Outcome SubmitAndWait(v1::Scheduler::Stub* stub, const v1::BuildSpec& spec);
// Follows an existing build (WatchBuild) to its end.
Outcome Watch(v1::Scheduler::Stub* stub, const std::string& build_id);

}  // namespace stagefarm::scheduler::sim

#endif  // STAGEFARM_SCHEDULER_SIM_H_
