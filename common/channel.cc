#include "common/channel.h"

#include <grpcpp/support/client_interceptor.h>

#include <map>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/tls.h"

namespace stagefarm {
namespace {

// Adds "authorization: Bearer <token>" to every call that has none.
class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(std::string header) : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      auto* md = m->GetSendInitialMetadata();
      if (md->find("authorization") == md->end()) {
        md->emplace("authorization", header_);
      }
    }
    m->Proceed();
  }

 private:
  std::string header_;
};

class TokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string token)
      : header_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(header_);
  }

 private:
  std::string header_;
};

}  // namespace
}  // namespace stagefarm

namespace stagefarm {

std::shared_ptr<grpc::Channel> FarmChannel(const std::string& address) {
  // One channel (and connection) per address for the whole process: a
  // client asks the scheduler for its CAS and then submits the build, and
  // several stores may talk to one CAS.
  static absl::Mutex mu;
  static auto* channels =
      new std::map<std::string, std::shared_ptr<grpc::Channel>>();
  absl::MutexLock lock(&mu);
  auto it = channels->find(address);
  if (it != channels->end()) return it->second;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (std::string name = TlsServerName(); !name.empty()) {
    args.SetSslTargetNameOverride(name);
  }
  std::shared_ptr<grpc::Channel> channel;
  if (std::string token = CallToken(); !token.empty()) {
    std::vector<
        std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(token));
    channel = grpc::experimental::CreateCustomChannelWithInterceptors(
        address, ChannelCredentials(), args, std::move(interceptors));
  } else {
    channel = grpc::CreateCustomChannel(address, ChannelCredentials(), args);
  }
  (*channels)[address] = channel;
  return channel;
}

}  // namespace stagefarm
