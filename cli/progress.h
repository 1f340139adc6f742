// Rendering build events for people: `plain` prints one line per event (for
// logs and CI), `tty` keeps a live view like BuildKit's: finished steps
// scroll up, each running step stays at the bottom with its timer and its
// latest output line. Thread-safe: events may come from several stages.
#ifndef STAGEFARM_CLI_PROGRESS_H_
#define STAGEFARM_CLI_PROGRESS_H_

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/build_engine.h"

namespace stagefarm::cli {

class Progress {
 public:
  virtual ~Progress() = default;
  virtual void OnEvent(const engine::BuildEvent& ev) = 0;
  // Called once at the end: draws the final state.
  virtual void Finish() {}
};

// mode: auto (tty when stderr is a terminal), plain, tty, quiet.
std::unique_ptr<Progress> MakeProgress(const std::string& mode, FILE* out);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_PROGRESS_H_
