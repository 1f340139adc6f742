// `stagefarm cluster up|down`: a farm on this machine for trying it out: a
// CAS, a scheduler and N workers on 127.0.0.1 (ports chosen by the system),
// started in the background with their state and logs under one directory.
#ifndef STAGEFARM_CLI_CLUSTER_H_
#define STAGEFARM_CLI_CLUSTER_H_

#include <string>

namespace stagefarm::cli {

// Starts the processes (the stagefarm-* programs next to this one), waits
// until they listen, and prints the STAGEFARM_CAS and STAGEFARM_SERVER
// settings (also written to STATE/env.sh). Refuses if one is running.
int ClusterUp(const std::string& state, int workers);
// Stops what `up` started from `state` (SIGTERM, then SIGKILL after 10 s).
int ClusterDown(const std::string& state);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_CLUSTER_H_
