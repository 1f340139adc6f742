#include "scheduler/ssh_relay.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace stagefarm::scheduler {

bool SshRelay::Client::Write(const v1::SshFrame& frame) {
  absl::MutexLock lock(&write_mu);
  return stream->Write(frame);
}

grpc::Status SshRelay::ServeClient(grpc::ServerContext* context,
                                   const std::string& build_id,
                                   const std::vector<std::string>& ssh_ids,
                                   Stream* stream) {
  auto client = std::make_shared<Client>();
  client->stream = stream;
  client->ssh_ids = ssh_ids;
  {
    absl::MutexLock lock(&mu_);
    if (!clients_.emplace(build_id, client).second) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          "build " + build_id + " has its SSH agents served");
    }
  }
  // Tells the client its agents are served from now on.
  v1::SshFrame ready;
  ready.set_build_id(build_id);
  client->Write(ready);
  v1::SshFrame frame;
  while (!context->IsCancelled() && stream->Read(&frame)) {
    std::shared_ptr<Connection> c;
    {
      absl::MutexLock lock(&client->mu);
      auto it = client->connections.find(frame.connection());
      if (it != client->connections.end()) c = it->second;
    }
    if (c == nullptr) continue;  // a connection that ended meanwhile
    absl::MutexLock lock(&c->mu);
    if (!frame.data().empty()) c->pending.push_back(frame.data());
    if (frame.close()) c->closed = true;
  }
  {
    absl::MutexLock lock(&mu_);
    clients_.erase(build_id);
  }
  absl::MutexLock lock(&client->mu);
  client->gone = true;
  for (auto& [id, c] : client->connections) {
    absl::MutexLock cl(&c->mu);
    c->closed = true;
  }
  return grpc::Status::OK;
}

grpc::Status SshRelay::ServeWorker(grpc::ServerContext* context,
                                   const std::string& build_id,
                                   const std::string& ssh_id, Stream* stream) {
  std::shared_ptr<Client> client;
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = clients_.find(build_id);
    if (it != clients_.end()) client = it->second;
    id = next_connection_++;
  }
  if (client == nullptr ||
      std::find(client->ssh_ids.begin(), client->ssh_ids.end(), ssh_id) ==
          client->ssh_ids.end()) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("the client of build ", build_id,
                     " is not serving SSH agent ", ssh_id, " (now)"));
  }
  auto c = std::make_shared<Connection>();
  {
    absl::MutexLock lock(&client->mu);
    if (client->gone) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "the client of build " + build_id + " has left");
    }
    client->connections[id] = c;
  }
  v1::SshFrame open;
  open.set_connection(id);
  open.set_ssh_id(ssh_id);
  bool ok = client->Write(open);
  // Client to worker, on a thread of its own while this one reads.
  std::thread to_worker([&] {
    while (ok) {
      std::vector<std::string> out;
      bool closed = false;
      {
        absl::MutexLock lock(&c->mu);
        auto ready = [&c]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu) {
          return !c->pending.empty() || c->closed;
        };
        c->mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
        out.swap(c->pending);
        closed = c->closed;
      }
      for (const std::string& data : out) {
        v1::SshFrame f;
        f.set_data(data);
        if (!stream->Write(f)) closed = true;
      }
      if (closed || context->IsCancelled()) {
        v1::SshFrame f;
        f.set_close(true);
        stream->Write(f);
        return;
      }
    }
  });
  // Worker to client.
  v1::SshFrame frame;
  while (ok && stream->Read(&frame)) {
    v1::SshFrame f;
    f.set_connection(id);
    f.set_data(frame.data());
    if (!frame.data().empty() && !client->Write(f)) break;
    if (frame.close()) break;
  }
  v1::SshFrame close;
  close.set_connection(id);
  close.set_close(true);
  client->Write(close);
  {
    absl::MutexLock lock(&c->mu);
    c->closed = true;
  }
  to_worker.join();
  absl::MutexLock lock(&client->mu);
  client->connections.erase(id);
  return ok ? grpc::Status::OK
            : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           "the client of build " + build_id + " has left");
}

int SshRelay::Connections() {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (auto& [id, client] : clients_) {
    absl::MutexLock cl(&client->mu);
    n += static_cast<int>(client->connections.size());
  }
  return n;
}

}  // namespace stagefarm::scheduler
