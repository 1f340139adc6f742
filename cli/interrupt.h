// Ctrl-C for the commands that run builds or containers: the first SIGINT
// or SIGTERM sets the flag (the command stops its work cleanly), a second
// one ends the process at once.
#ifndef STAGEFARM_CLI_INTERRUPT_H_
#define STAGEFARM_CLI_INTERRUPT_H_

#include <atomic>

namespace stagefarm::cli {

// Set once a signal came (after InstallSignalHandlers).
std::atomic<bool>& Cancelled();
void InstallSignalHandlers();

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_INTERRUPT_H_
