#include "cli/progress.h"

#include <unistd.h>

#include "absl/strings/str_format.h"

namespace stagefarm::cli {
namespace {

using Kind = worker::BuildEvent::Kind;

std::string Head(const worker::BuildEvent& ev) {
  return absl::StrFormat("[%s %d/%d]", ev.stage, ev.step, ev.steps);
}

class QuietProgress : public Progress {
 public:
  void OnEvent(const worker::BuildEvent&) override {}
};

class PlainProgress : public Progress {
 public:
  explicit PlainProgress(FILE* out) : out_(out) {}
  void OnEvent(const worker::BuildEvent& ev) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string head = Head(ev);
    switch (ev.kind) {
      case Kind::kStepStarted:
        fprintf(out_, "%s %s\n", head.c_str(), ev.text.c_str());
        break;
      case Kind::kStepCached:
        fprintf(out_, "%s CACHED %s\n", head.c_str(), ev.text.c_str());
        break;
      case Kind::kStepDone:
        fprintf(out_, "%s DONE %.2fs\n", head.c_str(), ev.seconds);
        break;
      case Kind::kStepFailed:
        fprintf(out_, "%s ERROR %s\n", head.c_str(), ev.text.c_str());
        break;
      case Kind::kNote:
        fprintf(out_, "[%s] %s\n", ev.stage.c_str(), ev.text.c_str());
        break;
      case Kind::kLog: {
        std::string& pending = partial_[ev.stage];
        pending += ev.text;
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          fprintf(out_, "%s | %s\n", head.c_str(),
                  pending.substr(0, nl).c_str());
          pending.erase(0, nl + 1);
        }
        break;
      }
    }
    fflush(out_);
  }

 private:
  FILE* out_;
  std::mutex mu_;
  std::map<std::string, std::string> partial_;
};

// The live view. Finished lines are printed once; the running steps are
// redrawn in place ten times a second.
class TtyProgress : public Progress {
 public:
  explicit TtyProgress(FILE* out) : out_(out), ticker_([this] { Tick(); }) {}
  ~TtyProgress() override { Finish(); }

  void OnEvent(const worker::BuildEvent& ev) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string head = Head(ev);
    switch (ev.kind) {
      case Kind::kStepStarted:
        running_[ev.stage] = Running{head + " " + ev.text, Clock::now(), ""};
        break;
      case Kind::kStepCached:
        done_.push_back(absl::StrFormat("%s CACHED %s", head, ev.text));
        break;
      case Kind::kStepDone: {
        auto it = running_.find(ev.stage);
        std::string text = it != running_.end() ? it->second.text : head;
        done_.push_back(absl::StrFormat("%s %.1fs", text, ev.seconds));
        running_.erase(ev.stage);
        break;
      }
      case Kind::kStepFailed: {
        running_.erase(ev.stage);
        done_.push_back(absl::StrFormat("%s ERROR %s", head, ev.text));
        auto& tail = tails_[ev.stage];
        for (const std::string& l : tail) done_.push_back("  > " + l);
        break;
      }
      case Kind::kNote:
        done_.push_back(absl::StrFormat("[%s] %s", ev.stage, ev.text));
        break;
      case Kind::kLog: {
        auto it = running_.find(ev.stage);
        std::string& pending = partial_[ev.stage];
        pending += ev.text;
        size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
          std::string line = pending.substr(0, nl);
          pending.erase(0, nl + 1);
          if (it != running_.end()) it->second.last_line = line;
          auto& tail = tails_[ev.stage];
          tail.push_back(line);
          if (tail.size() > 10) tail.erase(tail.begin());
        }
        break;
      }
    }
  }

  void Finish() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    ticker_.join();
    std::lock_guard<std::mutex> lock(mu_);
    Draw();
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Running {
    std::string text;
    Clock::time_point start;
    std::string last_line;
  };

  void Tick() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_) {
      Draw();
      cv_.wait_for(lock, std::chrono::milliseconds(100));
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

  void Draw() {
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
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::map<std::string, Running> running_;
  std::map<std::string, std::string> partial_;
  std::map<std::string, std::vector<std::string>> tails_;
  std::vector<std::string> done_;
  size_t printed_ = 0;
  int drawn_ = 0;
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
