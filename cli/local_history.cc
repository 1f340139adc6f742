#include "cli/local_history.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "blobstore/action_cache.h"
#include "buildview/build_view.h"
#include "cli/disk_usage.h"
#include "common/fs_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "platform/platform.h"

namespace stagefarm::cli {
namespace {

constexpr char kSuffix[] = ".record";

struct Entry {
  std::string id;
  int64_t mtime_ns = 0;
  int64_t bytes = 0;
};

std::vector<Entry> List(const std::string& dir) {
  std::vector<Entry> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!absl::EndsWith(name, kSuffix)) continue;
    struct stat st;
    if (stat((dir + "/" + name).c_str(), &st) != 0) continue;
    out.push_back({name.substr(0, name.size() - strlen(kSuffix)),
                   int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec,
                   st.st_size});
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.mtime_ns > b.mtime_ns;  // newest first
  });
  return out;
}

// A build still marked running whose process is gone (killed, crashed):
// it ended without a result.
void SettleOrphan(const std::string& dir, v1::BuildRecord* record) {
  v1::StoredBuild* b = record->mutable_build();
  if (b->finished()) return;
  auto pid_text = ReadFileToString(dir + "/" + b->build_id() + ".pid");
  int pid = 0;
  if (pid_text.ok() && absl::SimpleAtoi(*pid_text, &pid) && pid > 0 &&
      (kill(pid, 0) == 0 || errno == EPERM)) {
    return;  // still running
  }
  b->set_finished(true);
  b->set_code(static_cast<int>(absl::StatusCode::kAborted));
  b->set_error("the build's process ended before the build did");
  double last = b->submitted();
  for (const v1::Event& e : record->events()) {
    last = std::max(last, e.unix_time());
  }
  b->set_finished_at(last);
}

}  // namespace

LocalHistory::LocalHistory(std::string home, LocalOptions options)
    : dir_(home + "/history"), options_(std::move(options)) {
  options_.home = home;
  options_.lock_timeout = std::chrono::milliseconds(0);
}

absl::Status LocalHistory::Save(const v1::BuildRecord& record) {
  RETURN_IF_ERROR(MakeDirs(dir_, 0700));
  const std::string& id = record.build().build_id();
  const std::string pid_file = dir_ + "/" + id + ".pid";
  if (!record.build().finished()) {
    RETURN_IF_ERROR(
        WriteFileAtomically(pid_file, std::to_string(getpid()), 0600));
  }
  RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(dir_, "/", id, kSuffix),
                                      record.SerializeAsString(), 0600));
  if (record.build().finished()) unlink(pid_file.c_str());
  // Bounds: the newest records stay.
  size_t count = 0;
  int64_t bytes = 0;
  for (const Entry& e : List(dir_)) {
    ++count;
    bytes += e.bytes;
    if (count > kMaxBuilds || bytes > kMaxBytes) {
      unlink(absl::StrCat(dir_, "/", e.id, kSuffix).c_str());
      unlink(absl::StrCat(dir_, "/", e.id, ".pid").c_str());
    }
  }
  return absl::OkStatus();
}

std::vector<v1::BuildRecord> LocalHistory::All() {
  std::vector<v1::BuildRecord> out;
  for (const Entry& e : List(dir_)) {
    auto data = ReadFileToString(absl::StrCat(dir_, "/", e.id, kSuffix));
    v1::BuildRecord record;
    if (!data.ok() || !record.ParseFromString(*data)) continue;
    SettleOrphan(dir_, &record);
    out.push_back(std::move(record));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.build().submitted() > b.build().submitted();
  });
  return out;
}

v1::BuildSummary LocalHistory::Summary(const v1::BuildRecord& record) {
  const v1::StoredBuild& b = record.build();
  v1::BuildSummary sum;
  sum.set_build_id(b.build_id());
  sum.set_state(buildview::StateName(b.finished(), b.code()));
  sum.set_dockerfile_name(b.spec().dockerfile_name());
  sum.set_instance_name(b.spec().instance_name());
  sum.set_submitted(b.submitted());
  sum.set_finished(b.finished() ? b.finished_at() : 0);
  sum.set_stages(b.stages_size());
  int done = 0;
  for (const auto& st : b.stages()) done += st.status() == 3 ? 1 : 0;
  sum.set_stages_done(done);
  sum.set_error(b.error());
  if (b.has_manifest() && !b.manifest().hash().empty()) {
    *sum.mutable_manifest() = b.manifest();
  }
  sum.set_platform(b.spec().target_platform());
  sum.set_steps_run(b.steps_run());
  sum.set_steps_cached(b.steps_cached());
  sum.set_target(b.spec().target());
  *sum.mutable_tags() = b.spec().tags();
  return sum;
}

std::vector<v1::BuildSummary> LocalHistory::Summaries(
    const Tenant*, const buildview::BuildFilter& filter, size_t offset,
    size_t limit, size_t* total) {
  std::vector<v1::BuildSummary> out;
  *total = 0;
  for (const v1::BuildRecord& r : All()) {
    v1::BuildSummary sum = Summary(r);
    if (!filter.SubmittedInRange(sum.submitted())) continue;
    if (!filter.Matches(sum.state(), {sum.build_id(), sum.dockerfile_name(),
                                      sum.target(), sum.platform(), sum.error(),
                                      absl::StrJoin(sum.tags(), " ")})) {
      continue;
    }
    const size_t index = (*total)++;
    if (index < offset || (limit > 0 && index >= offset + limit)) continue;
    out.push_back(std::move(sum));
  }
  return out;
}

absl::StatusOr<v1::BuildRecord> LocalHistory::Record(
    const Tenant*, const std::string& build_id) {
  const bool hex = !build_id.empty() && build_id.size() <= 64 &&
                   std::all_of(build_id.begin(), build_id.end(),
                               [](char c) { return absl::ascii_isxdigit(c); });
  auto data = hex ? ReadFileToString(absl::StrCat(dir_, "/", build_id, kSuffix))
                  : absl::NotFoundError("");
  v1::BuildRecord record;
  if (!data.ok() || !record.ParseFromString(*data)) {
    return absl::NotFoundError(absl::StrCat("no build ", build_id,
                                            " in this machine's history (",
                                            kMaxBuilds, " builds are kept)"));
  }
  SettleOrphan(dir_, &record);
  return record;
}

absl::Status LocalHistory::Cancel(const Tenant*, const std::string&) {
  return absl::UnimplementedError(
      "a build on this machine stops with Ctrl-C in its terminal");
}

uint64_t LocalHistory::ChangeCount() {
  // A fingerprint of the records and their times: it changes when one is
  // written, added or removed.
  Sha256 h;
  for (const Entry& e : List(dir_)) {
    h.Update(absl::StrCat(e.id, ":", e.mtime_ns, ";"));
  }
  const Sha256::Raw raw = h.Final();
  uint64_t out = 0;
  for (int i = 0; i < 8; ++i) out = (out << 8) | raw[i];
  return out;
}

void LocalHistory::WaitForChange(uint64_t seen, absl::Time deadline) {
  while (absl::Now() < deadline && ChangeCount() == seen) {
    absl::SleepFor(absl::Milliseconds(250));
  }
}

nlohmann::json LocalHistory::Workers(const Tenant*) {
  nlohmann::json running = nlohmann::json::array();
  for (const v1::BuildRecord& r : All()) {
    if (r.build().finished()) continue;
    const std::vector<v1::Event> events(r.events().begin(), r.events().end());
    for (const auto& st : buildview::MakeView(r.build(), events).stages) {
      if (st.state == "running") {
        running.push_back(
            {{"build", r.build().build_id()}, {"stage", st.name}});
      }
    }
  }
  const int busy = static_cast<int>(running.size());
  return nlohmann::json::array(
      {{{"name", "local"},
        {"live", true},
        {"slots", static_cast<int>(std::thread::hardware_concurrency())},
        {"busy", busy},
        {"platforms", {platform::Host().String()}},
        {"running", std::move(running)},
        {"failures", 0},
        {"disk_bytes", -1},
        {"last_seen",
         absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())}}});
}

nlohmann::json LocalHistory::Store(const Tenant*) {
  absl::StatusOr<std::unique_ptr<Local>> local = Local::Open(options_);
  if (!local.ok()) return {{"error", std::string(local.status().message())}};
  absl::StatusOr<DiskUsage> du = MeasureDiskUsage(local->get());
  if (!du.ok()) return {{"error", std::string(du.status().message())}};
  return {{"home", options_.home},
          {"stored_bytes", du->blob_bytes},
          {"blob_count", du->blobs},
          {"kept_bytes", du->kept_bytes},
          {"snapshot_bytes", du->snapshot_bytes},
          {"cache_mount_bytes", du->cache_mount_bytes}};
}

absl::StatusOr<std::string> LocalHistory::ReadBlob(const Tenant*,
                                                   const std::string&,
                                                   const Digest& digest,
                                                   int64_t max_bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<Local> local, Local::Open(options_));
  ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                   local->store()->OpenRead(Local::kNamespace, digest, 0, 0));
  std::string out;
  while (static_cast<int64_t>(out.size()) < max_bytes) {
    ASSIGN_OR_RETURN(size_t n,
                     reader->Read(static_cast<size_t>(std::min<int64_t>(
                                      1 << 20, max_bytes - out.size())),
                                  &out));
    if (n == 0) break;
  }
  return out;
}

absl::StatusOr<build::bazel::remote::execution::v2::ActionResult>
LocalHistory::ReadActionResult(const Tenant*, const std::string&,
                               const Digest& action) {
  ASSIGN_OR_RETURN(std::unique_ptr<Local> local, Local::Open(options_));
  return ActionCache(local->store(), local->actions())
      .Get(Local::kNamespace, action, {});
}

}  // namespace stagefarm::cli
