#include "cli/ssh_forward.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace stagefarm::cli {
namespace {

// A connection to the agent's socket; -1 when it cannot be made.
int ConnectUnix(const std::string& path) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return -1;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    // MSG_NOSIGNAL: an agent that hung up is an error here, not SIGPIPE.
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

SshAgentServer::SshAgentServer(v1::Scheduler::Stub* scheduler,
                               std::string build_id,
                               std::map<std::string, std::string> agents)
    : scheduler_(scheduler),
      build_id_(std::move(build_id)),
      agents_(std::move(agents)) {
  thread_ = std::thread(&SshAgentServer::Run, this);
}

SshAgentServer::~SshAgentServer() {
  stopping_ = true;
  {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  thread_.join();
}

void SshAgentServer::Run() {
  while (!stopping_) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = &context;
    }
    Serve(&context);
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
    }
    // The scheduler went away (or refused): try again while the build is
    // followed.
    for (int i = 0; i < 5 && !stopping_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

bool SshAgentServer::Write(Stream* stream, const v1::SshFrame& frame) {
  absl::MutexLock lock(&write_mu_);
  return stream->Write(frame);
}

void SshAgentServer::Open(Stream* stream, uint64_t connection,
                          const std::string& ssh_id) {
  auto it = agents_.find(ssh_id);
  int fd = it == agents_.end() ? -1 : ConnectUnix(it->second);
  if (fd < 0) {
    v1::SshFrame close;
    close.set_connection(connection);
    close.set_close(true);
    Write(stream, close);
    return;
  }
  absl::MutexLock lock(&mu_);
  connections_[connection] = fd;
  opened_.push_back(fd);
  // The agent's answers, to the step.
  readers_.emplace_back([this, stream, connection, fd] {
    char buf[16384];
    while (true) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      v1::SshFrame f;
      f.set_connection(connection);
      f.set_data(buf, static_cast<size_t>(n));
      if (!Write(stream, f)) break;
    }
    v1::SshFrame close;
    close.set_connection(connection);
    close.set_close(true);
    Write(stream, close);
  });
}

void SshAgentServer::Serve(grpc::ClientContext* context) {
  std::unique_ptr<Stream> stream = scheduler_->ServeSsh(context);
  v1::SshFrame first;
  first.set_build_id(build_id_);
  if (Write(stream.get(), first)) {
    v1::SshFrame f;
    while (stream->Read(&f)) {
      if (!f.ssh_id().empty()) {
        Open(stream.get(), f.connection(), f.ssh_id());
        continue;
      }
      int fd = -1;
      {
        absl::MutexLock lock(&mu_);
        auto it = connections_.find(f.connection());
        if (it != connections_.end()) fd = it->second;
      }
      if (fd < 0) continue;
      if (!f.data().empty() && !WriteAll(fd, f.data())) f.set_close(true);
      if (f.close()) {
        shutdown(fd, SHUT_RDWR);
        absl::MutexLock lock(&mu_);
        connections_.erase(f.connection());
      }
    }
  }
  // The stream ended: end every connection, then the readers.
  std::vector<std::thread> readers;
  std::vector<int> opened;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, fd] : connections_) shutdown(fd, SHUT_RDWR);
    connections_.clear();
    readers.swap(readers_);
    opened.swap(opened_);
  }
  context->TryCancel();
  for (auto& t : readers) t.join();
  for (int fd : opened) close(fd);
  (void)stream->Finish();
}

}  // namespace stagefarm::cli
