#include "cli/interrupt.h"

#include <signal.h>

namespace stagefarm::cli {
namespace {

std::atomic<bool> g_cancel{false};

void OnSignal(int) {
  if (g_cancel.exchange(true)) {
    // A second Ctrl-C: give up at once.
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
  }
}

}  // namespace

std::atomic<bool>& Cancelled() { return g_cancel; }

void InstallSignalHandlers() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace stagefarm::cli
