// Response bodies that go on after their handler returned (server-sent
// events), held without a thread each: the connection leaves the server's
// pool once the response head is sent, and one thread (an epoll loop) holds
// every such connection, writes what is queued on them and notices when a
// client goes away. A write never blocks the writer: bytes wait in the
// stream's buffer, and a client that lets more than kMaxPendingBytes wait
// (it does not read) is disconnected. Thread-safe.
#ifndef STAGEFARM_WEBUI_HELD_STREAMS_H_
#define STAGEFARM_WEBUI_HELD_STREAMS_H_

#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace stagefarm::webui {

// One open response body (chunked), as its handler sees it.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  // Queues `data` as the body's next bytes; false once the stream is
  // closed (the client went away or does not read, the server stops).
  virtual bool Write(absl::string_view data) = 0;
  // Ends the body and closes the connection.
  virtual void Close() = 0;
  virtual bool closed() const = 0;
};

class HeldStreams {
 public:
  static constexpr size_t kMaxPendingBytes = 64 * 1024;

  // At most `max_streams` held at once.
  static absl::StatusOr<std::unique_ptr<HeldStreams>> Start(size_t max_streams);
  ~HeldStreams();  // closes every stream

  // Takes the connection `fd` (with `ssl` when it speaks TLS; both owned
  // from here on) whose response head has been sent: null, with the
  // connection closed, when `max_streams` are held already.
  std::shared_ptr<HttpStream> Adopt(int fd, SSL* ssl);
  size_t size() const;

  class Stream;  // the implementation, in held_streams.cc

 private:
  HeldStreams(size_t max_streams, int epoll_fd, int wake_fd);
  void Run();
  // Asks the loop to look at `s` (new, written to, or to close).
  void Wake(std::shared_ptr<Stream> s);

  const size_t max_streams_;
  const int epoll_fd_, wake_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> count_{0};
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Stream>> woken_ ABSL_GUARDED_BY(mu_);
  // The loop thread's own: streams by file descriptor.
  std::map<int, std::shared_ptr<Stream>> streams_;
  std::thread loop_;
};

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_HELD_STREAMS_H_
