#include "cas/cas_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace stagefarm {

absl::StatusOr<std::unique_ptr<CasServer>> CasServer::Start(
    const CasServerOptions& options) {
  size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen: expected HOST:PORT, got \"", options.listen, "\""));
  }
  std::unique_ptr<CasServer> server(new CasServer());
  server->host_ = options.listen.substr(0, colon);
  ASSIGN_OR_RETURN(server->store_, RocksDbBlobStore::Open(options.store));
  ASSIGN_OR_RETURN(InstancePolicy policy,
                   InstancePolicy::Create(options.policy));
  server->policy_ = std::make_unique<InstancePolicy>(std::move(policy));
  server->action_cache_ = std::make_unique<ActionCache>(
      server->store_.get(), server->store_.get(), options.shard);
  server->cas_ = std::make_unique<CasService>(
      server->store_.get(), server->policy_.get(), options.limits);
  server->capabilities_ = std::make_unique<CapabilitiesService>(
      server->policy_.get(), options.limits);
  server->ac_service_ = std::make_unique<ActionCacheService>(
      server->action_cache_.get(), server->policy_.get());
  server->bytestream_ = std::make_unique<ByteStreamService>(
      server->store_.get(), server->policy_.get(), options.limits);
  RocksDbBlobStore* store = server->store_.get();
  server->admin_ =
      std::make_unique<CasAdminService>([store] { return store->Stats(); });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (options.metrics != nullptr) {
    builder.experimental().SetInterceptorCreators(
        options.metrics->RpcInterceptors());
  }
  builder.AddListeningPort(options.listen, ServerCredentials(), &server->port_);
  // The farm's message bound (common/channel.h), which batch calls
  // (max_batch_total_size_bytes plus framing) fit well within.
  int max_message = static_cast<int>(std::max<int64_t>(
      options.limits.max_batch_total_size_bytes * 2, kMaxMessageBytes));
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.RegisterService(server->cas_.get());
  builder.RegisterService(server->capabilities_.get());
  builder.RegisterService(server->ac_service_.get());
  builder.RegisterService(server->bytestream_.get());
  builder.RegisterService(server->admin_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

CasServer::~CasServer() {
  // Destruction does not drain: whatever is still in flight is cancelled.
  if (server_ && !shut_down_) {
    shut_down_ = true;
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now());
  }
}

std::string CasServer::address() const {
  return absl::StrCat(host_, ":", port_);
}

void CasServer::Wait() {
  if (server_) server_->Wait();
}

void CasServer::Shutdown() {
  if (server_ && !shut_down_) {
    shut_down_ = true;
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
  }
}

}  // namespace stagefarm
