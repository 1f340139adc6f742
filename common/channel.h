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

// The largest gRPC message any farm process sends or accepts, set on both
// ends of every channel (clients here, the scheduler's and the CAS's
// servers). Senders split what could grow past it: workers' stage reports,
// the scheduler's build updates, CAS batches (max_batch_total_size_bytes).
inline constexpr int kMaxMessageBytes = 64 << 20;

std::shared_ptr<grpc::Channel> FarmChannel(const std::string& address);

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_CHANNEL_H_
