#include "common/channel.h"

#include <map>
#include <mutex>

#include "common/tls.h"

namespace stagefarm {

std::shared_ptr<grpc::Channel> FarmChannel(const std::string& address) {
  // One channel (and connection) per address for the whole process: a
  // client asks the scheduler for its CAS and then submits the build, and
  // several stores may talk to one CAS.
  static std::mutex mu;
  static auto* channels =
      new std::map<std::string, std::shared_ptr<grpc::Channel>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = channels->find(address);
  if (it != channels->end()) return it->second;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (std::string name = TlsServerName(); !name.empty()) {
    args.SetSslTargetNameOverride(name);
  }
  auto channel = grpc::CreateCustomChannel(address, ChannelCredentials(), args);
  (*channels)[address] = channel;
  return channel;
}

}  // namespace stagefarm
