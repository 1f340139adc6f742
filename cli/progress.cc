#include "cli/progress.h"

#include <unistd.h>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace stagefarm::cli {
namespace {

using Kind = engine::BuildEvent::Kind;

std::string Head(const engine::BuildEvent& ev) {
  return absl::StrFormat("[%s %d/%d]", ev.stage, ev.step, ev.steps);
}

// Output is bytes; it reaches the screen in lines. A line longer than this
// without a newline is shown in pieces, so a 20 MB line costs no memory.
constexpr size_t kMaxLine = 16 << 10;

// Splits a stage's output into lines: complete ones, and the rest when it
// grows past kMaxLine or the step ends (Flush).
class Lines {
 public:
  template <typename F>
  void Add(const std::string& stage, absl::string_view chunk, F line) {
    std::string& pending = partial_[stage];
    pending.append(chunk.data(), chunk.size());
    size_t start = 0, nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
      line(absl::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    while (pending.size() - start > kMaxLine) {
      line(absl::string_view(pending).substr(start, kMaxLine));
      start += kMaxLine;
    }
    pending.erase(0, start);
  }
  template <typename F>
  void Flush(const std::string& stage, F line) {
    auto it = partial_.find(stage);
    if (it == partial_.end()) return;
    if (!it->second.empty()) line(absl::string_view(it->second));
    partial_.erase(it);
  }

 private:
  std::map<std::string, std::string> partial_;
};

// A line of output for a live, redrawn view: what a terminal would show
// last for a `\r` progress bar, without escape sequences or other control
// characters (they would move the cursor the redraw relies on).
std::string ForLiveView(absl::string_view line) {
  size_t cr = line.rfind('\r');
  if (cr != absl::string_view::npos) {
    // "50%\r" leaves the bar as it was: the text before the last \r.
    if (cr + 1 == line.size() && cr > 0) {
      absl::string_view before = line.substr(0, cr);
      size_t prev = before.rfind('\r');
      line = prev == absl::string_view::npos ? before : before.substr(prev + 1);
    } else {
      line = line.substr(cr + 1);
    }
  }
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == 0x1b) {
      // CSI: ESC [ params final-byte; other escapes: ESC and one byte.
      if (i + 1 < line.size() && line[i + 1] == '[') {
        i += 2;
        while (i < line.size() && !(line[i] >= 0x40 && line[i] <= 0x7e)) {
          ++i;
        }
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\t') {
      out += ' ';
    } else if (c < 0x20 || c == 0x7f) {
      continue;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

class QuietProgress : public Progress {
 public:
  void OnEvent(const engine::BuildEvent&) override {}
};

class PlainProgress : public Progress {
 public:
  explicit PlainProgress(FILE* out) : out_(out) {}
  void OnEvent(const engine::BuildEvent& ev) override {
    absl::MutexLock lock(&mu_);
    std::string head = Head(ev);
    switch (ev.kind) {
      case Kind::kStepStarted:
        Put(head + " ", ev.text);
        break;
      case Kind::kStepCached:
        Put(head + " CACHED ", ev.text);
        break;
      case Kind::kStepDone:
        FlushLines(ev, head);
        fprintf(out_, "%s DONE %.2fs\n", head.c_str(), ev.seconds);
        break;
      case Kind::kStepFailed:
        FlushLines(ev, head);
        Put(head + " ERROR ", ev.text);
        break;
      case Kind::kStepCancelled:
        FlushLines(ev, head);
        Put(head + " CANCELED ", ev.text);
        break;
      case Kind::kNote:
        Put("[" + ev.stage + "] ", ev.text);
        break;
      case Kind::kLog:
        lines_.Add(ev.stage, ev.text,
                   [&](absl::string_view l) { Put(head + " | ", l); });
        break;
    }
    fflush(out_);
  }

 private:
  // The bytes as they are (a terminal or a CI log shows them as it does the
  // process's own output), NULs included.
  void Put(const std::string& prefix, absl::string_view text) {
    fwrite(prefix.data(), 1, prefix.size(), out_);
    fwrite(text.data(), 1, text.size(), out_);
    fputc('\n', out_);
  }
  void FlushLines(const engine::BuildEvent& ev, const std::string& head) {
    lines_.Flush(ev.stage, [&](absl::string_view l) { Put(head + " | ", l); });
  }

  FILE* out_;
  absl::Mutex mu_;
  Lines lines_;
};

// The live view. Finished lines are printed once; the running steps are
// redrawn in place ten times a second.
class TtyProgress : public Progress {
 public:
  explicit TtyProgress(FILE* out) : out_(out), ticker_([this] { Tick(); }) {}
  ~TtyProgress() override { Finish(); }

  void OnEvent(const engine::BuildEvent& ev) override {
    absl::MutexLock lock(&mu_);
    std::string head = Head(ev);
    switch (ev.kind) {
      case Kind::kStepStarted:
        running_[ev.stage] = Running{head + " " + ev.text, Clock::now(), ""};
        break;
      case Kind::kStepCached:
        done_.push_back(absl::StrFormat("%s CACHED %s", head, ev.text));
        break;
      case Kind::kStepDone: {
        lines_.Flush(ev.stage, [](absl::string_view) {});
        auto it = running_.find(ev.stage);
        std::string text = it != running_.end() ? it->second.text : head;
        done_.push_back(absl::StrFormat("%s %.1fs", text, ev.seconds));
        running_.erase(ev.stage);
        break;
      }
      case Kind::kStepFailed: {
        lines_.Flush(ev.stage, [&](absl::string_view l) {
          mu_.AssertHeld();  // called by Flush, under the lock
          AddTail(ev.stage, l);
        });
        running_.erase(ev.stage);
        done_.push_back(
            absl::StrFormat("%s ERROR %s", head, ForLiveView(ev.text)));
        auto& tail = tails_[ev.stage];
        for (const std::string& l : tail) done_.push_back("  > " + l);
        break;
      }
      case Kind::kStepCancelled:
        lines_.Flush(ev.stage, [](absl::string_view) {});
        running_.erase(ev.stage);
        done_.push_back(
            absl::StrFormat("%s CANCELED %s", head, ForLiveView(ev.text)));
        break;
      case Kind::kNote:
        done_.push_back(
            absl::StrFormat("[%s] %s", ev.stage, ForLiveView(ev.text)));
        break;
      case Kind::kLog: {
        auto it = running_.find(ev.stage);
        lines_.Add(ev.stage, ev.text, [&](absl::string_view l) {
          mu_.AssertHeld();  // called by Add, under the lock
          std::string line = AddTail(ev.stage, l);
          if (it != running_.end() && !line.empty()) {
            it->second.last_line = line;
          }
        });
        break;
      }
    }
  }

  void Finish() override {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.SignalAll();
    ticker_.join();
    absl::MutexLock lock(&mu_);
    Draw();
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Running {
    std::string text;
    Clock::time_point start;
    std::string last_line;
  };

  // Keeps a stage's last ten lines (shown when its step fails).
  std::string AddTail(const std::string& stage, absl::string_view raw)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string line = ForLiveView(raw);
    auto& tail = tails_[stage];
    tail.push_back(line);
    if (tail.size() > 10) tail.erase(tail.begin());
    return line;
  }

  void Tick() {
    absl::MutexLock lock(&mu_);
    while (!stopped_) {
      Draw();
      cv_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
    }
  }

  // Cuts a line to the terminal's width so redraws stay in place.
  static std::string Fit(std::string s, size_t width) {
    for (char& c : s) {
      if (c == '\t' || c == '\r') c = ' ';
    }
    if (s.size() > width) s = s.substr(0, width > 3 ? width - 3 : 0) + "...";
    return s;
  }

  void Draw() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string frame;
    // Move up over the previous live lines and clear them.
    for (int i = 0; i < drawn_; ++i) frame += "\x1b[1A\x1b[2K";
    frame += "\r";
    size_t width = 100;
    for (size_t i = printed_; i < done_.size(); ++i) {
      frame += Fit(done_[i], 400) + "\n";
    }
    printed_ = done_.size();
    drawn_ = 0;
    auto now = Clock::now();
    for (const auto& [stage, r] : running_) {
      double secs = std::chrono::duration<double>(now - r.start).count();
      frame += Fit(absl::StrFormat("%s %.1fs", r.text, secs), width) + "\n";
      ++drawn_;
      if (!r.last_line.empty()) {
        frame += "\x1b[2m" + Fit("  " + r.last_line, width) + "\x1b[0m\n";
        ++drawn_;
      }
    }
    fputs(frame.c_str(), out_);
    fflush(out_);
  }

  FILE* out_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  Lines lines_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> tails_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> done_ ABSL_GUARDED_BY(mu_);
  size_t printed_ ABSL_GUARDED_BY(mu_) = 0;
  int drawn_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread ticker_;
};

}  // namespace

std::unique_ptr<Progress> MakeProgress(const std::string& mode, FILE* out) {
  if (mode == "quiet") return std::make_unique<QuietProgress>();
  bool tty = mode == "tty" || (mode == "auto" && isatty(fileno(out)));
  if (tty) return std::make_unique<TtyProgress>(out);
  return std::make_unique<PlainProgress>(out);
}

}  // namespace stagefarm::cli
