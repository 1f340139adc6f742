#include "webui/held_streams.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace stagefarm::webui {

class HeldStreams::Stream final : public HttpStream,
                                  public std::enable_shared_from_this<Stream> {
 public:
  Stream(HeldStreams* owner, int fd, SSL* ssl)
      : owner_(owner), fd_(fd), ssl_(ssl) {}

  bool Write(absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    if (closed_ || close_asked_) return false;
    if (data.empty()) return true;  // an empty chunk would end the body
    absl::StrAppend(&queued_, absl::Hex(data.size()), "\r\n", data, "\r\n");
    // Under mu_: the loop marks the stream closed under it before the
    // owner goes away, so the owner is alive here.
    owner_->Wake(shared_from_this());
    return true;
  }

  void Close() override {
    absl::MutexLock lock(&mu_);
    if (closed_ || close_asked_) return;
    close_asked_ = true;
    owner_->Wake(shared_from_this());
  }

  bool closed() const override {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  friend class HeldStreams;
  HeldStreams* const owner_;
  mutable absl::Mutex mu_;
  std::string queued_ ABSL_GUARDED_BY(mu_);
  bool close_asked_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // The loop thread's own.
  int fd_;
  SSL* ssl_;
  std::string sending_;
  bool registered_ = false, want_out_ = false;
};

namespace {

// The loop's side of a stream, in functions of their own so that the
// class above stays what its users see.
bool WouldBlock(SSL* ssl, int n) {
  if (ssl != nullptr) {
    const int err = SSL_get_error(ssl, n);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
  }
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HeldStreams>> HeldStreams::Start(
    size_t max_streams) {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return ErrnoStatus(errno, "web view: epoll_create1", "");
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    close(epoll_fd);
    return ErrnoStatus(err, "web view: eventfd", "");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    const int err = errno;
    close(epoll_fd);
    close(wake_fd);
    return ErrnoStatus(err, "web view: epoll_ctl", "");
  }
  auto held = std::unique_ptr<HeldStreams>(
      new HeldStreams(max_streams, epoll_fd, wake_fd));
  HeldStreams* raw = held.get();
  held->loop_ = std::thread([raw] { raw->Run(); });
  return held;
}

HeldStreams::HeldStreams(size_t max_streams, int epoll_fd, int wake_fd)
    : max_streams_(max_streams), epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}

HeldStreams::~HeldStreams() {
  stop_ = true;
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (loop_.joinable()) loop_.join();
  close(epoll_fd_);
  close(wake_fd_);
}

size_t HeldStreams::size() const { return count_.load(); }

std::shared_ptr<HttpStream> HeldStreams::Adopt(int fd, SSL* ssl) {
  if (stop_ || count_.fetch_add(1) >= max_streams_) {
    if (!stop_) count_.fetch_sub(1);
    if (ssl != nullptr) SSL_free(ssl);
    close(fd);
    return nullptr;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (ssl != nullptr) {
    // The loop writes from its own buffer, which moves as it grows.
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  auto stream = std::make_shared<Stream>(this, fd, ssl);
  Wake(stream);
  return stream;
}

void HeldStreams::Wake(std::shared_ptr<Stream> s) {
  bool first = false;
  {
    absl::MutexLock lock(&mu_);
    first = woken_.empty();
    woken_.push_back(std::move(s));
  }
  if (first) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
}

void HeldStreams::Run() {
  // Closes `s` for good: its connection, its place in the loop and count.
  auto close_now = [this](Stream* s) {
    {
      absl::MutexLock lock(&s->mu_);
      if (s->closed_) return;
      s->closed_ = true;
      s->queued_.clear();
    }
    if (s->registered_) {
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s->fd_, nullptr);
      streams_.erase(s->fd_);
    }
    if (s->ssl_ != nullptr) {
      SSL_shutdown(s->ssl_);  // best effort: the socket does not block
      SSL_free(s->ssl_);
      s->ssl_ = nullptr;
    }
    close(s->fd_);
    count_.fetch_sub(1);
  };
  // Sends what is queued, as much as the socket takes now.
  auto flush = [&](Stream* s) {
    bool ending = false;
    {
      absl::MutexLock lock(&s->mu_);
      if (s->closed_) return;
      s->sending_ += s->queued_;
      s->queued_.clear();
      ending = s->close_asked_;
    }
    if (ending) s->sending_ += "0\r\n\r\n";
    if (s->sending_.size() > kMaxPendingBytes) return close_now(s);
    while (!s->sending_.empty()) {
      const int size =
          static_cast<int>(std::min<size_t>(s->sending_.size(), 1 << 20));
      const int n = s->ssl_ != nullptr
                        ? SSL_write(s->ssl_, s->sending_.data(), size)
                        : static_cast<int>(send(s->fd_, s->sending_.data(),
                                                static_cast<size_t>(size),
                                                MSG_NOSIGNAL | MSG_DONTWAIT));
      if (n > 0) {
        s->sending_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (WouldBlock(s->ssl_, n)) break;
      return close_now(s);
    }
    // A body that ends is sent as far as the client takes it at once.
    if (ending) return close_now(s);
    const bool want_out = !s->sending_.empty();
    if (want_out != s->want_out_) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0u);
      ev.data.fd = s->fd_;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, s->fd_, &ev);
      s->want_out_ = want_out;
    }
  };
  // Reads what the client sent (nothing is expected) to see it go away;
  // false when it did.
  auto drain = [&](Stream* s) {
    char buf[4096];
    for (int i = 0; i < 16; ++i) {
      const int n =
          s->ssl_ != nullptr
              ? SSL_read(s->ssl_, buf, sizeof(buf))
              : static_cast<int>(recv(s->fd_, buf, sizeof(buf), MSG_DONTWAIT));
      if (n > 0) continue;
      if (WouldBlock(s->ssl_, n)) return true;
      close_now(s);
      return false;
    }
    return true;
  };
  auto take_woken = [this] {
    std::vector<std::shared_ptr<Stream>> woken;
    absl::MutexLock lock(&mu_);
    woken.swap(woken_);
    return woken;
  };

  epoll_event events[64];
  while (!stop_) {
    const int n = epoll_wait(epoll_fd_, events, 64, 1000);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count = 0;
        (void)!read(wake_fd_, &count, sizeof(count));
        continue;
      }
      auto it = streams_.find(fd);
      if (it == streams_.end()) continue;  // closed earlier in this round
      std::shared_ptr<Stream> s = it->second;
      const uint32_t e = events[i].events;
      if ((e & (EPOLLERR | EPOLLHUP)) != 0) {
        close_now(s.get());
        continue;
      }
      if ((e & (EPOLLIN | EPOLLRDHUP)) != 0 && !drain(s.get())) continue;
      if ((e & EPOLLOUT) != 0) flush(s.get());
    }
    for (const std::shared_ptr<Stream>& s : take_woken()) {
      if (!s->registered_) {
        {
          absl::MutexLock lock(&s->mu_);
          if (s->closed_) continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = s->fd_;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s->fd_, &ev) != 0) {
          close_now(s.get());
          continue;
        }
        s->registered_ = true;
        streams_[s->fd_] = s;
      }
      flush(s.get());
    }
  }
  // Stopping: every stream ends, those not yet in the loop too.
  while (!streams_.empty()) {
    std::shared_ptr<Stream> s = streams_.begin()->second;
    close_now(s.get());
  }
  for (const std::shared_ptr<Stream>& s : take_woken()) close_now(s.get());
}

}  // namespace stagefarm::webui
