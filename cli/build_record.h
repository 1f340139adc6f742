// A build on this machine (the embedded engine) written down as the farm
// writes its builds (v1::BuildRecord: a StoredBuild and its events), so
// the same views read both: `build --trace`, and the local history.
// Thread-safe.
#ifndef STAGEFARM_CLI_BUILD_RECORD_H_
#define STAGEFARM_CLI_BUILD_RECORD_H_

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/build_engine.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::cli {

class BuildRecorder {
 public:
  // `worker` names where the steps run ("local"). `save`, when given,
  // gets the record as it grows: at the start, after steps end (at most
  // once a second) and at Finish.
  BuildRecorder(const engine::BuildRequest& request, std::string worker,
                std::function<void(const v1::BuildRecord&)> save = nullptr);

  // Every event of the build, as it happens.
  void OnEvent(const engine::BuildEvent& ev);

  // The record once the build has ended with `status` (`result` when OK).
  v1::BuildRecord Finish(const absl::Status& status,
                         const engine::BuildResult* result);

 private:
  absl::Mutex mu_;
  v1::BuildRecord record_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> stages_ ABSL_GUARDED_BY(mu_);  // name -> index
  std::string worker_;
  std::function<void(const v1::BuildRecord&)> save_;
  absl::Time last_save_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_BUILD_RECORD_H_
