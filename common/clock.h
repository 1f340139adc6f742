// Time as an injected dependency, so LRU order and timeouts are testable
// without sleeping. Implementations are thread-safe.
#ifndef STAGEFARM_COMMON_CLOCK_H_
#define STAGEFARM_COMMON_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace stagefarm {

// "2026-11-28T10:06:45Z": UTC, whole seconds (image configs, history, the
// farm's times).
inline std::string Rfc3339(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch.
  virtual int64_t NowMicros() const = 0;
};

class SystemClock : public Clock {
 public:
  static SystemClock* Get() {
    static SystemClock* clock = new SystemClock();
    return clock;
  }
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Seconds since the Unix epoch, to the system clock's microsecond (the
// farm's event times).
inline double UnixSeconds() {
  return static_cast<double>(SystemClock::Get()->NowMicros()) / 1e6;
}

// A clock that moves only when told to.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_micros = 1'000'000'000'000'000)
      : now_(start_micros) {}
  int64_t NowMicros() const override { return now_.load(); }
  void AdvanceMicros(int64_t delta) { now_ += delta; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_CLOCK_H_
