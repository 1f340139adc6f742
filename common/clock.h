// Time as an injected dependency, so LRU order and timeouts are testable
// without sleeping. Implementations are thread-safe.
#ifndef STAGEFARM_COMMON_CLOCK_H_
#define STAGEFARM_COMMON_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace stagefarm {

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
