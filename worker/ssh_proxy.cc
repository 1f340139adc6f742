#include "worker/ssh_proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fs_util.h"
#include "common/status_macros.h"

namespace stagefarm::worker {

absl::StatusOr<std::unique_ptr<SshProxy>> SshProxy::Start(
    v1::Scheduler::Stub* scheduler, const std::string& dir,
    const std::string& build_id, const std::string& lease_id,
    const std::vector<std::string>& ssh_ids) {
  std::unique_ptr<SshProxy> p(new SshProxy(scheduler, dir, build_id, lease_id));
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  int n = 0;
  for (const std::string& id : ssh_ids) {
    std::string path = absl::StrCat(dir, "/", n++, ".sock");
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SSH agent socket path too long: ", path));
    }
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd, 16) != 0) {
      int err = errno;
      if (fd >= 0) close(fd);
      return absl::InternalError(absl::StrCat("cannot listen for SSH agent ",
                                              id, " at ", path, ": ",
                                              strerror(err)));
    }
    chmod(path.c_str(), 0600);
    p->listeners_.push_back(fd);
    p->sockets_[id] = path;
    absl::MutexLock lock(&p->mu_);
    p->threads_.emplace_back(&SshProxy::Accept, p.get(), fd, id);
  }
  return p;
}

SshProxy::~SshProxy() {
  stopping_ = true;
  for (int fd : listeners_) shutdown(fd, SHUT_RDWR);
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& c : contexts_) c->TryCancel();
    for (int fd : connections_) shutdown(fd, SHUT_RDWR);
  }
  // Accept threads end on the shut listeners; relays on their cancelled
  // streams and shut sockets. Relays may still be added by an accept
  // thread until it ends, so join until none is left.
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (threads_.empty()) break;
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    threads.clear();
    absl::MutexLock lock(&mu_);
    for (auto& c : contexts_) c->TryCancel();
    for (int fd : connections_) shutdown(fd, SHUT_RDWR);
  }
  for (int fd : listeners_) close(fd);
  (void)RemoveAll(dir_);
}

void SshProxy::Accept(int listener, std::string ssh_id) {
  while (!stopping_) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;  // shut down
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    connections_.push_back(fd);
    threads_.emplace_back(&SshProxy::Relay, this, fd, ssh_id);
  }
}

void SshProxy::Relay(int fd, std::string ssh_id) {
  auto context = std::make_shared<grpc::ClientContext>();
  {
    absl::MutexLock lock(&mu_);
    contexts_.push_back(context);
    if (stopping_) context->TryCancel();
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::SshFrame, v1::SshFrame>> stream =
      scheduler_->SshAgent(context.get());
  v1::SshFrame first;
  first.set_build_id(build_id_);
  first.set_ssh_id(ssh_id);
  first.set_lease_id(lease_id_);
  bool ok = stream->Write(first);
  // The agent's answers, to the step.
  std::thread from_agent([&] {
    v1::SshFrame f;
    while (stream->Read(&f)) {
      const std::string& d = f.data();
      size_t done = 0;
      while (done < d.size()) {
        // MSG_NOSIGNAL: a step that hung up is no SIGPIPE for the worker.
        ssize_t n = send(fd, d.data() + done, d.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      if (f.close()) break;
    }
    shutdown(fd, SHUT_RDWR);
  });
  // The step's requests, to the agent.
  char buf[16384];
  while (ok) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    v1::SshFrame f;
    f.set_data(buf, static_cast<size_t>(n));
    ok = stream->Write(f);
  }
  v1::SshFrame done;
  done.set_close(true);
  stream->Write(done);
  stream->WritesDone();
  from_agent.join();
  (void)stream->Finish();
  absl::MutexLock lock(&mu_);
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (*it == fd) {
      connections_.erase(it);
      break;
    }
  }
  close(fd);
}

}  // namespace stagefarm::worker
