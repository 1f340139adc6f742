#include "buildview/build_view.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace stagefarm::buildview {
namespace {

using nlohmann::json;

StepView* FindStep(StageView* stage, int step) {
  for (StepView& s : stage->steps) {
    if (s.step == step) return &s;
  }
  stage->steps.emplace_back();
  stage->steps.back().step = step;
  return &stage->steps.back();
}

std::string DigestText(const build::bazel::remote::execution::v2::Digest& d) {
  if (d.hash().empty()) return "";
  return absl::StrCat("sha256:", d.hash(), "/", d.size_bytes());
}

// Worker lanes: a stage takes the first lane of its worker that is free at
// its start.
void AssignLanes(std::vector<StageView>* stages, double now) {
  std::vector<StageView*> order;
  for (StageView& st : *stages) {
    if (st.start > 0 && !st.worker.empty()) order.push_back(&st);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const StageView* a, const StageView* b) {
                     return a->start < b->start;
                   });
  std::map<std::string, std::vector<double>> busy_until;  // worker -> lanes
  for (StageView* st : order) {
    std::vector<double>& lanes = busy_until[st->worker];
    const double end = st->end > 0 ? st->end : now;
    size_t lane = 0;
    while (lane < lanes.size() && lanes[lane] > st->start) ++lane;
    if (lane == lanes.size()) lanes.push_back(0);
    lanes[lane] = std::max(end, st->start);
    st->lane = static_cast<int>(lane);
  }
}

// What a key part (cachekey/cache_key.h, the engine's fields) stands for.
std::string PartMeaning(absl::string_view name) {
  static const auto* const kMeanings =
      new std::map<std::string, std::string, std::less<>>{
          {"parent", "an earlier step's result"},
          {"base", "the base image"},
          {"platform", "the platform"},
          {"source-date-epoch", "SOURCE_DATE_EPOCH"},
          {"instruction", "the instruction"},
          {"args", "the command"},
          {"env", "the environment"},
          {"user", "the user"},
          {"workdir", "the working directory"},
          {"network", "the network"},
          {"mount", "a mount or its source's files"},
          {"content", "the files it copies"},
          {"sources", "the sources"},
          {"dest", "the destination"},
          {"chown", "--chown"},
          {"chmod", "--chmod"},
          {"exclude", "--exclude"},
          {"from", "the stage or image it copies from"},
          {"heredoc", "the heredoc"},
          {"urls", "the URLs"},
          {"checksum", "--checksum"},
          {"git", "the git repository"},
          {"commit", "the git commit"},
          {"path", "the path"}};
  const absl::string_view base = name.substr(0, name.find('#'));
  auto it = kMeanings->find(base);
  return it == kMeanings->end() ? std::string(base) : it->second;
}

}  // namespace

bool IsEarlierBuildOf(const v1::BuildSummary& earlier, const BuildView& later) {
  return earlier.build_id() != later.id &&
         earlier.submitted() < later.submitted &&
         earlier.tenant() == later.tenant &&
         earlier.instance_name() == later.instance &&
         earlier.dockerfile_name() == later.dockerfile_name &&
         earlier.target() == later.target &&
         earlier.platform() == later.platform && later.kind == "dockerfile";
}

void ExplainMisses(const BuildView* earlier, BuildView* view) {
  for (StageView& st : view->stages) {
    const StageView* before = nullptr;
    if (earlier != nullptr) {
      for (const StageView& e : earlier->stages) {
        if (e.name == st.name) before = &e;
      }
    }
    for (StepView& s : st.steps) {
      if (s.state == "cached" || s.key_parts.empty()) continue;
      s.miss_parts.clear();
      if (view->no_cache) {
        s.miss = "the build asked for no cache (--no-cache)";
        continue;
      }
      if (earlier == nullptr) {
        s.miss = "no earlier build of this Dockerfile to compare with";
        continue;
      }
      const StepView* prev = nullptr;
      if (before != nullptr) {
        for (const StepView& p : before->steps) {
          if (p.step == s.step && !p.key_parts.empty()) prev = &p;
        }
      }
      if (prev == nullptr) {
        s.miss = absl::StrCat("build ", earlier->id, " had no step ", s.step,
                              " in stage ", st.name);
        continue;
      }
      std::map<std::string, std::string> old(prev->key_parts.begin(),
                                             prev->key_parts.end());
      for (const auto& [name, fingerprint] : s.key_parts) {
        auto it = old.find(name);
        if (it == old.end() || it->second != fingerprint) {
          s.miss_parts.push_back(name);
        }
        if (it != old.end()) old.erase(it);
      }
      for (const auto& gone : old) s.miss_parts.push_back(gone.first);
      if (s.miss_parts.empty()) {
        s.miss = absl::StrCat(
            "same key as in build ", earlier->id,
            ": its cache entry was evicted, or that build's run of it was "
            "not stored");
      } else {
        std::vector<std::string> what;
        for (const std::string& name : s.miss_parts) {
          what.push_back(absl::StrCat(PartMeaning(name), " (", name, ")"));
        }
        s.miss = absl::StrCat("changed since build ", earlier->id, ": ",
                              absl::StrJoin(what, ", "));
      }
    }
  }
}

bool BuildFilter::Matches(
    absl::string_view build_state,
    std::initializer_list<absl::string_view> fields) const {
  if (!state.empty() && build_state != state) return false;
  if (text.empty()) return true;
  auto same = [](char a, char b) {
    return absl::ascii_tolower(static_cast<unsigned char>(a)) ==
           absl::ascii_tolower(static_cast<unsigned char>(b));
  };
  for (absl::string_view field : fields) {
    if (std::search(field.begin(), field.end(), text.begin(), text.end(),
                    same) != field.end()) {
      return true;
    }
  }
  return false;
}

std::string StateName(bool finished, int code) {
  if (!finished) return "running";
  if (code == 0) return "succeeded";
  if (code == 1) return "cancelled";  // CANCELLED
  return "failed";
}

BuildView MakeView(const v1::StoredBuild& build,
                   absl::Span<const v1::Event> events) {
  BuildView v;
  v.id = build.build_id();
  v.tenant = build.tenant();
  v.instance = build.spec().instance_name();
  v.dockerfile_name = build.spec().dockerfile_name();
  v.target = build.spec().target();
  v.platform = build.spec().target_platform();
  v.kind = build.spec().has_action() ? "action" : "dockerfile";
  v.state = StateName(build.finished(), build.code());
  v.submitted = build.submitted();
  v.finished = build.finished() ? build.finished_at() : 0;
  v.code = build.code();
  v.error = build.error();
  v.manifest = build.has_manifest() && !build.manifest().hash().empty()
                   ? absl::StrCat("sha256:", build.manifest().hash())
                   : "";
  v.manifest_size = build.manifest().size_bytes();
  v.steps_run = build.steps_run();
  v.steps_cached = build.steps_cached();
  v.no_cache = build.spec().no_cache();
  v.tags.assign(build.spec().tags().begin(), build.spec().tags().end());

  std::map<std::string, size_t> by_name;
  for (const v1::StoredStage& s : build.stages()) {
    StageView st;
    st.index = s.index();
    st.name = s.display();
    st.depends_on.assign(s.depends_on().begin(), s.depends_on().end());
    if (s.base_stage() >= 0 &&
        std::find(st.depends_on.begin(), st.depends_on.end(), s.base_stage()) ==
            st.depends_on.end()) {
      st.depends_on.push_back(s.base_stage());
    }
    st.worker = s.worker();
    st.platform = s.platform();
    st.attempts = s.attempts();
    st.queued = build.submitted();
    switch (s.status()) {
      case 1:
        st.state = "queued";
        break;
      case 2:
        st.state = "running";
        break;
      case 3:
        st.state = s.cached() ? "cached" : "done";
        break;
      default:
        st.state = "waiting";
    }
    by_name[st.name] = v.stages.size();
    v.stages.push_back(std::move(st));
  }
  auto stage_of = [&](const std::string& name) -> StageView* {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &v.stages[it->second];
  };

  double last_time = build.submitted();
  for (const v1::Event& e : events) {
    last_time = std::max(last_time, e.unix_time());
    StageView* st = stage_of(e.stage());
    if (st == nullptr) continue;
    const std::string& k = e.kind();
    const double t = e.unix_time();
    if (k == "stage-started") {
      st->start = t;
      st->end = 0;
      if (!e.worker().empty()) st->worker = e.worker();
    } else if (k == "retry") {
      // The stage runs again from its first step.
      st->steps.clear();
      st->start = 0;
      st->end = 0;
    } else if (k == "stage-done" || k == "stage-cached") {
      st->end = t;
      if (st->start == 0) st->start = t;
      if (k == "stage-cached" ||
          absl::StrContains(e.text(), "from the cache")) {
        st->state = "cached";
      }
    } else if (k == "started" || k == "cached") {
      StepView* step = FindStep(st, e.step());
      step->instruction = e.text();
      step->start = t;
      step->worker = e.worker();
      step->line = e.line();
      step->key = e.key();
      step->key_parts.clear();
      for (const v1::KeyPart& p : e.key_parts()) {
        step->key_parts.emplace_back(p.name(), p.fingerprint());
      }
      if (e.has_layer()) step->layer_bytes = e.layer_bytes();
      if (e.steps() > 0) st->steps_total = e.steps();
      if (k == "cached") {
        step->state = "cached";
        step->end = t;
      }
      if (st->start == 0) st->start = t;
    } else if (k == "done" || k == "failed") {
      StepView* step = FindStep(st, e.step());
      step->seconds = e.seconds();
      if (step->start == 0) step->start = t - e.seconds();
      // The worker's own measure is finer than when the report arrived.
      step->end = e.seconds() > 0 ? step->start + e.seconds() : t;
      if (e.has_layer()) step->layer_bytes = e.layer_bytes();
      if (k == "failed") {
        step->state = "failed";
        // The event names the step; why it failed is the build's error,
        // for the step that failed it (with file:line and exit code).
        step->error = e.text() != step->instruction ? e.text() : "";
        st->state = "failed";
      } else {
        step->state = "done";
      }
    } else if (k == "cancelled") {
      // Stopped before it finished: cancelled, or a stage it needs failed.
      StepView* step = FindStep(st, e.step());
      if (step->start == 0) step->start = t;
      step->end = t;
      step->state = "stopped";
      if (st->state != "failed") st->state = "stopped";
    } else if (k == "log") {
      if (e.step() > 0) FindStep(st, e.step())->log_bytes += e.text().size();
    } else if (k == "note" && e.has_full_log() && e.step() > 0) {
      FindStep(st, e.step())->full_log = DigestText(e.full_log());
    }
  }
  for (StageView& st : v.stages) {
    for (StepView& step : st.steps) {
      if (step.state != "failed") continue;
      if (step.error.empty() && build.finished() && build.code() != 0) {
        step.error = build.error();
      }
      size_t at = step.error.find("exit code: ");
      if (at != std::string::npos) {
        step.exit_code = std::atoi(step.error.c_str() + at + 11);
      }
    }
    std::sort(
        st.steps.begin(), st.steps.end(),
        [](const StepView& a, const StepView& b) { return a.step < b.step; });
    // A stage without a stage-done event (the embedded engine's) ends with
    // its last step.
    if (st.end == 0 && st.state != "running" && st.state != "queued") {
      for (const StepView& step : st.steps) st.end = std::max(st.end, step.end);
    }
    if (build.finished()) {
      if (st.state == "running") st.state = "stopped";
      if (st.start > 0 && st.end == 0) st.end = build.finished_at();
      for (StepView& step : st.steps) {
        if (step.state == "running") {
          step.state = "stopped";
          step.end = build.finished_at();
        }
      }
    }
  }
  const double now = build.finished() ? build.finished_at() : last_time;
  AssignLanes(&v.stages, now);
  return v;
}

json ToJson(const BuildView& v) {
  json stages = json::array();
  for (const StageView& st : v.stages) {
    json steps = json::array();
    for (const StepView& s : st.steps) {
      json step = {{"step", s.step},     {"instruction", s.instruction},
                   {"state", s.state},   {"start", s.start},
                   {"end", s.end},       {"seconds", s.seconds},
                   {"worker", s.worker}, {"log_bytes", s.log_bytes}};
      if (!s.full_log.empty()) step["full_log"] = s.full_log;
      if (s.line > 0) step["line"] = s.line;
      if (s.layer_bytes >= 0) step["layer_bytes"] = s.layer_bytes;
      if (!s.key.empty()) step["key"] = s.key;
      if (!s.miss.empty()) {
        step["miss"] = s.miss;
        step["miss_parts"] = s.miss_parts;
      }
      if (!s.error.empty()) step["error"] = s.error;
      if (s.exit_code >= 0) step["exit_code"] = s.exit_code;
      steps.push_back(std::move(step));
    }
    stages.push_back({{"index", st.index},
                      {"name", st.name},
                      {"depends_on", st.depends_on},
                      {"state", st.state},
                      {"worker", st.worker},
                      {"lane", st.lane},
                      {"platform", st.platform},
                      {"attempts", st.attempts},
                      {"queued", st.queued},
                      {"start", st.start},
                      {"end", st.end},
                      {"steps_total", st.steps_total},
                      {"steps", std::move(steps)}});
  }
  return {{"id", v.id},
          {"kind", v.kind},
          {"tenant", v.tenant},
          {"instance", v.instance},
          {"dockerfile", v.dockerfile_name},
          {"target", v.target},
          {"platform", v.platform},
          {"state", v.state},
          {"submitted", v.submitted},
          {"finished", v.finished},
          {"code", v.code},
          {"error", v.error},
          {"manifest", v.manifest},
          {"manifest_size", v.manifest_size},
          {"steps_run", v.steps_run},
          {"steps_cached", v.steps_cached},
          {"no_cache", v.no_cache},
          {"tags", v.tags},
          {"stages", std::move(stages)}};
}

json TraceEvents(const BuildView& v) {
  // Times in microseconds from the submission, so the trace starts at 0.
  auto us = [&v](double t) {
    return std::max<int64_t>(0, static_cast<int64_t>((t - v.submitted) * 1e6));
  };
  std::map<std::string, int> pids;  // worker -> process id, in first use
  json out = json::array();
  auto pid_of = [&](const std::string& worker) {
    const std::string name = worker.empty() ? "(no worker)" : worker;
    auto [it, added] = pids.emplace(name, static_cast<int>(pids.size()) + 1);
    if (added) {
      out.push_back({{"ph", "M"},
                     {"name", "process_name"},
                     {"pid", it->second},
                     {"tid", 0},
                     {"args", {{"name", name}}}});
    }
    return it->second;
  };
  std::map<std::pair<int, int>, bool> named_lanes;
  for (const StageView& st : v.stages) {
    if (st.start <= 0) continue;
    const int pid = pid_of(st.worker);
    const int tid = st.lane + 1;
    if (!named_lanes[{pid, tid}]) {
      named_lanes[{pid, tid}] = true;
      out.push_back({{"ph", "M"},
                     {"name", "thread_name"},
                     {"pid", pid},
                     {"tid", tid},
                     {"args", {{"name", absl::StrCat("slot ", tid)}}}});
    }
    const double stage_end = st.end > 0 ? st.end : st.start;
    out.push_back({{"ph", "X"},
                   {"cat", "stage"},
                   {"name", absl::StrCat("stage ", st.name)},
                   {"pid", pid},
                   {"tid", tid},
                   {"ts", us(st.start)},
                   {"dur", us(stage_end) - us(st.start)},
                   {"args",
                    {{"state", st.state},
                     {"index", st.index},
                     {"platform", st.platform},
                     {"attempts", st.attempts}}}});
    for (const StepView& s : st.steps) {
      if (s.start <= 0) continue;
      const double end = s.end > 0 ? s.end : stage_end;
      out.push_back(
          {{"ph", "X"},
           {"cat", s.state == "cached" ? "cached" : "step"},
           {"name", s.instruction.empty() ? absl::StrCat("step ", s.step)
                                          : s.instruction},
           {"pid", pid},
           {"tid", tid},
           {"ts", us(s.start)},
           {"dur", std::max<int64_t>(0, us(end) - us(s.start))},
           {"args",
            {{"stage", st.name},
             {"step", s.step},
             {"state", s.state},
             {"log_bytes", s.log_bytes}}}});
    }
  }
  return {{"traceEvents", std::move(out)},
          {"displayTimeUnit", "ms"},
          {"otherData",
           {{"build", v.id},
            {"state", v.state},
            {"dockerfile", v.dockerfile_name},
            {"submitted", v.submitted}}}};
}

}  // namespace stagefarm::buildview
