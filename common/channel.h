// gRPC channels between the farm's processes (client, scheduler, workers,
// CAS): large messages allowed, and a short reconnect backoff so a process
// that restarts (or a network that comes back) is reached again within
// about a second instead of gRPC's default of up to two minutes. One
// channel per address is kept for the life of the process.
#ifndef STAGEFARM_COMMON_CHANNEL_H_
#define STAGEFARM_COMMON_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace stagefarm {

std::shared_ptr<grpc::Channel> FarmChannel(const std::string& address);

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_CHANNEL_H_
