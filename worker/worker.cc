#include "worker/worker.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/remote_store.h"
#include "cachemount/shared_cache_mounts.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/contain.h"
#include "common/fs_util.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "contexttree/context_fetch.h"
#include "engine/build_engine.h"
#include "executor/runc_executor.h"
#include "farmapi/build_spec.h"
#include "farmapi/events.h"
#include "image/image_store.h"
#include "remoteexec/action_runner.h"
#include "snapshot/snapshots.h"
#include "stagecache/stage_cache.h"
#include "stagefarm/v1/farm.grpc.pb.h"
#include "worker/lease_files.h"
#include "worker/outbox.h"
#include "worker/ssh_proxy.h"
#include "worker/task_cache_sync.h"

namespace stagefarm::worker {
namespace {

// The IPv4 addresses a gRPC target ("HOST:PORT", "dns:///HOST:PORT",
// "ipv4:A:P") names, so that sandboxes can be kept from them; none when it
// does not resolve (a worker then still runs, and says so).
std::vector<std::string> AddressesOf(absl::string_view target) {
  for (absl::string_view scheme : {"dns:///", "dns:", "ipv4:"}) {
    if (absl::ConsumePrefix(&target, scheme)) break;
  }
  size_t colon = target.rfind(':');
  absl::string_view host =
      colon == absl::string_view::npos ? target : target.substr(0, colon);
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  std::vector<std::string> out;
  struct addrinfo hints = {};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  if (getaddrinfo(std::string(host).c_str(), nullptr, &hints, &res) != 0) {
    stagefarm::LogInfo(
        "cannot resolve a farm address to keep RUN steps "
        "from it",
        {{"address", std::string(target)}});
    return out;
  }
  for (struct addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char text[INET_ADDRSTRLEN];
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) != nullptr &&
        std::find(out.begin(), out.end(), text) == out.end()) {
      out.push_back(text);
    }
  }
  freeaddrinfo(res);
  return out;
}

// A new process's incarnation: random, so a restarted worker (same name)
// is told apart from the process it replaces.
std::string NewIncarnation() {
  std::random_device random;
  std::string bytes(12, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return absl::BytesToHexString(bytes);
}

// The scheduler's stage cache and wire events.
using farmapi::ToWire;
using stagecache::LookupStage;
using stagecache::StageHit;
using stagecache::StoreStage;

class Worker : public WorkerDaemon {
 public:
  Worker(WorkerFlags flags, const std::atomic<bool>* stop)
      : f_(std::move(flags)), stop_(stop) {}

  // For the worker's metrics.
  struct Counters {
    std::atomic<int64_t> busy{0};  // stages running now
    std::atomic<int64_t> stages_done{0}, stages_failed{0};
    std::atomic<int64_t> steps_run{0}, steps_cached{0};
    std::atomic<int64_t> cache_bytes{0};  // unpacked layers, at the last look
    std::atomic<int64_t> evicted_bytes{0};
    std::atomic<int64_t> disk_full{0};  // stages failed: work dir full
  };
  Counters& counters() { return counters_; }
  void RegisterMetrics(Metrics* m) override;

  absl::Status Init() override {
    RETURN_IF_ERROR(MakeDirs(f_.work, 0700));
    executor::RuncOptions ro;
    ro.runtime = f_.runtime;
    ro.state_dir = f_.work + "/runc";
    ro.bundles_dir = f_.work + "/bundles";
    ro.cgroup_parent = "/stagefarm-" + f_.name;
    ro.private_network = f_.step_network != "host";
    ro.sandbox_network.pool = f_.sandbox_pool;
    ro.sandbox_network.deny = f_.sandbox_deny;
    ro.sandbox_network.log_cleanup = true;
    ro.rootless = f_.rootless;
    for (absl::string_view target : absl::StrSplit(
             absl::StrCat(f_.scheduler, ",", f_.cas), ',', absl::SkipEmpty())) {
      for (std::string& a : AddressesOf(target)) {
        ro.sandbox_network.deny.push_back(std::move(a));
      }
    }
    if (f_.rootless && ro.private_network) {
      // slirp4netns keeps the host's loopback out of reach, and nothing
      // else: a scheduler or CAS on another address stays reachable.
      for (const std::string& a : ro.sandbox_network.deny) {
        if (!absl::StartsWith(a, "127.") && a != "::1") {
          stagefarm::Log(
              "warn",
              absl::StrCat("rootless: RUN steps can reach ", a,
                           " (the scheduler's or the CAS's; only loopback "
                           "addresses are out of their reach)"));
        }
      }
    }
    ASSIGN_OR_RETURN(std::unique_ptr<executor::RuncExecutor> runc,
                     executor::RuncExecutor::Create(ro));
    RETURN_IF_ERROR(runc->PrepareNetwork());
    executor_ = std::move(runc);
    cas_target_ = CasClient::Connect(f_.cas);
    scheduler_channel_ = FarmChannel(f_.scheduler);
    scheduler_ = v1::Scheduler::NewStub(scheduler_channel_);
    FindLostStages();
    return absl::OkStatus();
  }

  void Attend() override {
    while (true) {
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      v1::WorkerPresence hello;
      hello.set_worker(f_.name);
      hello.set_incarnation(incarnation_);
      {
        absl::MutexLock lock(&attend_mu_);
        if (attend_stopped_) return;
        attend_ctx_ = &ctx;
        for (const v1::HeldStage& h : lost_) *hello.add_lost() = h;
      }
      auto stream = scheduler_->Attend(&ctx);
      v1::AttendResponse ack;
      if (stream->Write(hello) && stream->Read(&ack)) {
        {
          absl::MutexLock lock(&write_mu_);
          attend_stream_ = stream.get();
        }
        {
          absl::MutexLock lock(&attend_mu_);
          attend_state_ = AttendState::kAttending;
          // The scheduler has dealt with them.
          for (const v1::HeldStage& h : lost_) {
            lease_files_.Forget(h.lease_id());
          }
          lost_.clear();
        }
        stagefarm::LogInfo(
            "attending the scheduler",
            {{"worker", f_.name}, {"incarnation", incarnation_}});
        while (stream->Read(&ack)) {
        }
        absl::MutexLock lock(&write_mu_);
        attend_stream_ = nullptr;
      }
      {
        absl::MutexLock lock(&attend_mu_);
        attend_ctx_ = nullptr;
      }
      grpc::Status s = stream->Finish();
      if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        // An older scheduler: leases time out as before.
        absl::MutexLock lock(&attend_mu_);
        attend_state_ = AttendState::kUnsupported;
        return;
      }
      {
        absl::MutexLock lock(&attend_mu_);
        if (attend_stopped_) return;
        if (attend_state_ == AttendState::kUnknown) {
          attend_state_ = AttendState::kFailed;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  void StopAttending() override {
    absl::MutexLock lock(&attend_mu_);
    attend_stopped_ = true;
    if (attend_ctx_ != nullptr) attend_ctx_->TryCancel();
  }

  // Logs when the scheduler is first reached (operators and tests wait
  // for it).
  void SayWhenConnected() override {
    while (!stop_->load()) {
      if (scheduler_channel_->WaitForConnected(
              std::chrono::system_clock::now() +
              std::chrono::milliseconds(200))) {
        stagefarm::LogInfo("connected to the scheduler",
                           {{"worker", f_.name}, {"scheduler", f_.scheduler}});
        return;
      }
    }
  }

  void Slot() override {
    {
      // Leases name this process only once the scheduler watches it (or
      // cannot: an older scheduler, or not reached within 5 s).
      absl::MutexLock lock(&attend_mu_);
      auto ready = [this] {
        attend_mu_.AssertHeld();
        return attend_state_ != AttendState::kUnknown;
      };
      attend_mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(5));
    }
    while (!stop_->load()) {
      if (!RoomToWork()) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(15));
      v1::LeaseRequest req;
      req.set_worker(f_.name);
      req.set_wait_ms(5000);
      req.set_slots(f_.slots);
      req.set_layer_cache_bytes(counters_.cache_bytes);
      {
        absl::MutexLock lock(&attend_mu_);
        if (attend_state_ != AttendState::kUnsupported) {
          req.set_incarnation(incarnation_);
        }
      }
      for (const std::string& p : f_.native_platforms) {
        req.add_native_platforms(p);
      }
      for (const std::string& p : f_.emulated_platforms) {
        req.add_emulated_platforms(p);
      }
      v1::LeaseResponse resp;
      grpc::Status s = scheduler_->Lease(&ctx, req, &resp);
      if (!s.ok()) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      if (!resp.has_task()) continue;
      // The stage's own run is contained in RunTaskLocked (the stage fails
      // with the text); this keeps the slot alive whatever else escapes.
      try {
        RunTask(resp.task(), std::max(50, resp.heartbeat_ms()));
      } catch (const std::exception& e) {
        stagefarm::LogError(
            absl::StrCat("a stage's task: internal error: ", e.what()),
            {{"worker", f_.name}, {"build", resp.task().build_id()}});
      } catch (...) {
        stagefarm::LogError(
            "a stage's task: internal error: an unknown "
            "exception",
            {{"worker", f_.name}, {"build", resp.task().build_id()}});
      }
    }
  }

 private:
  // Per CAS instance: its store, image index and snapshots (instances are
  // tenants; nothing is shared between them on the worker either).
  struct Instance {
    std::unique_ptr<RemoteBlobStore> store;
    std::unique_ptr<image::ImageStore> images;
    std::unique_ptr<snapshot::Snapshotter> snapshots;
    std::string dir;
    // Its cache mounts (under dir, so one tenant's never serve another),
    // shared with the other workers through the CAS.
    std::unique_ptr<cachemount::SharedCacheMounts> cache_mounts;
    // Input files of its REAPI actions (made at the first action).
    std::unique_ptr<remoteexec::FileCache> action_files;
  };

  absl::StatusOr<Instance*> InstanceFor(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = instances_.find(name);
    if (it != instances_.end()) return it->second.get();
    auto inst = std::make_unique<Instance>();
    inst->store = std::make_unique<RemoteBlobStore>(
        std::make_shared<CasClient>(cas_target_, name));
    std::string dir =
        absl::StrCat(f_.work, "/instances/", absl::BytesToHexString(name));
    RETURN_IF_ERROR(MakeDirs(dir, 0700));
    inst->images = std::make_unique<image::ImageStore>(inst->store.get(), "",
                                                       dir + "/images.json");
    ASSIGN_OR_RETURN(
        inst->snapshots,
        snapshot::Snapshotter::Open(dir + "/worker", inst->store.get(), ""));
    inst->dir = dir;
    inst->cache_mounts = std::make_unique<cachemount::SharedCacheMounts>(
        inst->store.get(), dir + "/cache-mount-state", f_.cache_mount_bytes);
    Instance* out = inst.get();
    instances_[name] = std::move(inst);
    return out;
  }

  absl::StatusOr<std::string> Context(Instance* inst, const Digest& root) {
    std::string dir = absl::StrCat(
        f_.work, "/contexts/",
        absl::BytesToHexString(inst->store->client()->instance_name()), "-",
        root.hash());
    absl::MutexLock lock(&context_mu_);
    struct stat st;
    if (stat(dir.c_str(), &st) == 0) return dir;
    RETURN_IF_ERROR(MakeDirs(f_.work + "/contexts", 0700));
    RETURN_IF_ERROR(
        contexttree::MaterializeTree(inst->store.get(), "", root, dir));
    return dir;
  }

  // With `context` false (assembly only) the context is not fetched.
  absl::StatusOr<engine::BuildRequest> Request(const v1::StageTask& task,
                                               Instance* inst, bool context) {
    const v1::BuildSpec& spec = task.spec();
    ASSIGN_OR_RETURN(engine::BuildRequest r, farmapi::FromSpec(spec));
    ASSIGN_OR_RETURN(Digest root, Digest::FromProto(spec.context()));
    if (context) {
      ASSIGN_OR_RETURN(r.context_dir, Context(inst, root));
    }
    r.created = task.created();
    return r;
  }

  absl::StatusOr<engine::BuildResult> Run(
      const v1::StageTask& task,
      const std::function<void(const engine::BuildEvent&)>& emit,
      const std::atomic<bool>* cancel, engine::StageOutcome* outcome) {
    ASSIGN_OR_RETURN(Instance * inst, InstanceFor(task.spec().instance_name()));
    bool assemble_only = !task.cached_state().empty();
    ASSIGN_OR_RETURN(engine::BuildRequest req,
                     Request(task, inst, !assemble_only));
    // Secrets: files in a private directory for this stage only.
    std::string secrets_dir;
    struct RemoveAfter {
      std::string* dir;
      ~RemoveAfter() {
        if (!dir->empty()) (void)RemoveAll(*dir);
      }
    } remove_secrets{&secrets_dir};
    if (!assemble_only && !task.spec().secrets().empty()) {
      RETURN_IF_ERROR(MakeDirs(f_.work + "/secrets", 0700));
      ASSIGN_OR_RETURN(secrets_dir,
                       MakeTempDir(f_.work + "/secrets", "stage-"));
      int n = 0;
      for (const auto& [id, bytes] : task.spec().secrets()) {
        std::string path = absl::StrCat(secrets_dir, "/", n++);
        int fd =
            open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, bytes.data(), bytes.size()) !=
                          static_cast<ssize_t>(bytes.size())) {
          if (fd >= 0) close(fd);
          return absl::InternalError(
              absl::StrCat("cannot write secret ", id, " for the stage"));
        }
        close(fd);
        req.secrets[id] = path;
      }
    }
    // The client's SSH agents, relayed through the scheduler.
    std::unique_ptr<SshProxy> ssh;
    if (!assemble_only && !task.spec().ssh_ids().empty()) {
      RETURN_IF_ERROR(MakeDirs(f_.work + "/ssh", 0700));
      ASSIGN_OR_RETURN(std::string dir,
                       MakeTempDir(f_.work + "/ssh", "stage-"));
      ASSIGN_OR_RETURN(ssh, SshProxy::Start(scheduler_.get(), dir,
                                            task.build_id(), task.lease_id(),
                                            {task.spec().ssh_ids().begin(),
                                             task.spec().ssh_ids().end()}));
      for (const auto& [id, path] : ssh->sockets()) req.ssh[id] = path;
    }
    std::map<int, engine::ImageState> deps;
    for (const auto& [index, text] : task.dependencies()) {
      ASSIGN_OR_RETURN(deps[index], engine::ParseImageState(text));
    }
    engine::EngineOptions eo;
    eo.cache_mounts = inst->dir + "/cache-mounts";
    TaskCacheSync cache_sync(inst->cache_mounts.get(), scheduler_.get(),
                             task.lease_id(), cancel);
    eo.cache_sync = &cache_sync;
    eo.permit_host_network = f_.permit_host_network;
    // The scheduler sets the build's log bounds (never above its own).
    if (task.spec().log_max_bytes() > 0) {
      eo.log_limits.live_bytes = task.spec().log_max_bytes();
    }
    if (task.spec().log_rate_bytes() > 0) {
      eo.log_limits.rate_bytes_per_second = task.spec().log_rate_bytes();
    }
    engine::BuildEngine engine(inst->store.get(), inst->store.get(),
                               inst->images.get(), inst->snapshots.get(),
                               executor_.get(), eo);
    std::optional<StageHit> earlier;
    if (!assemble_only && !task.stage_key().empty() &&
        !task.spec().no_cache()) {
      // An earlier attempt may have finished the stage and stored it
      // before its report was lost: take its result instead of running
      // the stage again.
      auto hit = LookupStage(inst->store->client(), task.stage_key());
      if (hit.ok() && hit->has_value()) earlier = std::move(*hit);
    }
    if (assemble_only) {
      // The scheduler found the stage in the cache: only the image is left.
      ASSIGN_OR_RETURN(outcome->state,
                       engine::ParseImageState(task.cached_state()));
    } else if (earlier) {
      ASSIGN_OR_RETURN(outcome->state, engine::ParseImageState(earlier->state));
      outcome->steps_cached = earlier->steps;
      engine::BuildEvent note;
      note.kind = engine::BuildEvent::Kind::kNote;
      note.text =
          "the stage's result was in the stage cache (an earlier "
          "attempt finished it); not run again";
      emit(note);
    } else {
      ASSIGN_OR_RETURN(*outcome, engine.RunStage(req, task.stage_index(), deps,
                                                 emit, cancel));
      if (!task.stage_key().empty()) {
        // The next build with the same inputs skips this stage.
        std::vector<Digest> layers;
        for (const auto& l : outcome->state.layers) layers.push_back(l.digest);
        absl::Status s =
            StoreStage(inst->store->client(), task.stage_key(),
                       engine::ImageStateJson(outcome->state), layers,
                       outcome->steps_run + outcome->steps_cached);
        if (!s.ok()) {
          stagefarm::LogError("cannot store the stage result: " + s.ToString(),
                              {{"worker", f_.name},
                               {"build", task.build_id()},
                               {"stage", std::to_string(task.stage_index())}});
        }
      }
    }
    engine::BuildResult result;
    if (task.assemble()) {
      ASSIGN_OR_RETURN(result, engine.Assemble(req, outcome->state));
    }
    return result;
  }

  // A REAPI action (remoteexec/action_runner.h): its ExecuteResponse in
  // *response; an error is this worker's failure to run it.
  absl::StatusOr<engine::BuildResult> RunAction(const v1::StageTask& task,
                                                const std::atomic<bool>* cancel,
                                                std::string* response) {
    const v1::RemoteAction& a = task.spec().action();
    ASSIGN_OR_RETURN(Instance * inst, InstanceFor(task.spec().instance_name()));
    remoteexec::ActionRequest req;
    ASSIGN_OR_RETURN(req.action, Digest::FromProto(a.action_digest()));
    if (a.has_image_manifest()) {
      ASSIGN_OR_RETURN(req.image_manifest,
                       Digest::FromProto(a.image_manifest()));
    }
    req.network = a.network();
    req.do_not_cache = a.do_not_cache();
    remoteexec::FileCache* files = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (inst->action_files == nullptr) {
        ASSIGN_OR_RETURN(inst->action_files, remoteexec::FileCache::Open(
                                                 inst->dir + "/action-files",
                                                 f_.action_cache_bytes));
      }
      files = inst->action_files.get();
    }
    remoteexec::ActionRunnerOptions ro;
    ro.scratch_dir = inst->dir + "/actions";
    ro.worker_name = f_.name;
    remoteexec::ActionRunner runner(inst->store.get(), files,
                                    inst->images.get(), inst->snapshots.get(),
                                    executor_.get(), ro);
    absl::StatusOr<reapi::ExecuteResponse> ran = runner.Run(req, cancel);
    files->Trim();
    ASSIGN_OR_RETURN(reapi::ExecuteResponse r, std::move(ran));
    *response = r.SerializeAsString();
    return engine::BuildResult{};
  }

 public:
  // Opens every instance that has snapshots on disk (a restarted worker
  // keeps its layer cache), then brings the cache within its bound.
  absl::Status OpenExistingInstances() override {
    std::string dir = f_.work + "/instances";
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return absl::OkStatus();
    std::vector<std::string> names;
    while (struct dirent* e = readdir(d)) {
      std::string hex = e->d_name;
      // The unnamed instance lives in instances/ itself.
      if (hex == "worker") names.push_back("");
      if (hex == "." || hex == ".." || hex.size() % 2 != 0) continue;
      if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        continue;
      }
      names.push_back(absl::HexStringToBytes(hex));
    }
    closedir(d);
    for (const std::string& name : names) {
      RETURN_IF_ERROR(InstanceFor(name).status());
    }
    Prune();
    return absl::OkStatus();
  }

  // Removes least recently used snapshots until the cache is within
  // --cache-bytes. Skipped while any stage runs (its layers are mounted).
  void Prune() {
    if (!run_mu_.TryLock()) return;
    PruneIdle();
    run_mu_.Unlock();
  }

  void PruneIdle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(run_mu_) {
    struct Entry {
      int64_t used, bytes;
      snapshot::Snapshotter* snapshots;
      std::string name;
    };
    std::vector<Entry> all;
    int64_t total = 0;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [name, inst] : instances_) {
        auto list = inst->snapshots->List();
        if (!list.ok()) {
          stagefarm::LogError(list.status().ToString(), {{"worker", f_.name}});
          continue;
        }
        for (const auto& i : *list) {
          all.push_back({i.used, i.bytes, inst->snapshots.get(), i.name});
          total += i.bytes;
        }
      }
    }
    counters_.cache_bytes = total;
    if (total <= f_.cache_bytes) return;
    std::sort(all.begin(), all.end(),
              [](const Entry& a, const Entry& b) { return a.used < b.used; });
    int removed = 0;
    int64_t freed = 0;
    for (const Entry& e : all) {
      if (total - freed <= f_.cache_bytes) break;
      absl::Status s = e.snapshots->Remove(e.name);
      if (!s.ok()) {
        stagefarm::LogError(s.ToString(), {{"worker", f_.name}});
        continue;
      }
      freed += e.bytes;
      ++removed;
    }
    counters_.cache_bytes = total - freed;
    counters_.evicted_bytes += freed;
    stagefarm::LogInfo(
        absl::StrCat("layer cache ", total >> 20, " MiB over ",
                     f_.cache_bytes >> 20, " MiB: removed ", removed,
                     " snapshots (", freed >> 20, " MiB)"),
        {{"worker", f_.name}});
  }

 private:
  void RunTask(const v1::StageTask& task, int heartbeat_ms) {
    {
      absl::ReaderMutexLock running(&run_mu_);
      ++counters_.busy;
      RunTaskLocked(task, heartbeat_ms);
      --counters_.busy;
    }
    Prune();
  }

  // Whether a failed Report may succeed if sent again (the scheduler
  // restarting, a cut network); anything else never will.
  static bool Retryable(const grpc::Status& s) {
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::ABORTED:
      case grpc::StatusCode::CANCELLED:
        return true;
      default:
        return false;
    }
  }

  // Whether the work directory's volume has --min-free-bytes free; a
  // worker short of disk takes no stages (they would fail at once, and a
  // worker failing fast would draw every stage of the farm).
  bool RoomToWork() {
    struct statvfs vfs;
    if (statvfs(f_.work.c_str(), &vfs) != 0) return true;
    int64_t free_bytes =
        static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
    bool room = free_bytes >= f_.min_free_bytes;
    bool was = had_room_.exchange(room);
    if (room != was) {
      stagefarm::Log(
          room ? "info" : "error",
          room ? "disk has room again: taking stages"
               : "disk nearly full: taking no stages",
          {{"worker", f_.name}, {"free_bytes", std::to_string(free_bytes)}});
    }
    return room;
  }

  // A failure as the build's owner should see it: a full disk under the
  // work directory is the worker's, not the build's, and its paths are
  // the worker's own business (the whole error is in the worker's log).
  absl::Status ForClient(const absl::Status& s) {
    if (!absl::StrContains(s.message(), strerror(ENOSPC))) return s;
    ++counters_.disk_full;
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker ", f_.name,
        ": its disk is full (the volume of its --work "
        "directory): free space there or lower its --cache-bytes; the "
        "stage can run again as soon as there is room"));
  }

  void LogRefused(const v1::StageTask& task, const grpc::Status& s,
                  const char* what) {
    stagefarm::LogError(
        absl::StrCat("the scheduler refused ", what, ": ", s.error_message(),
                     " (", static_cast<int>(s.error_code()),
                     "); not sending it again"),
        {{"worker", f_.name},
         {"build", task.build_id()},
         {"stage", std::to_string(task.stage_index())},
         {"lease", task.lease_id()}});
  }

  void RunTaskLocked(const v1::StageTask& task, int heartbeat_ms) {
    {
      v1::HeldStage held;
      held.set_lease_id(task.lease_id());
      Hold(held);
    }
    Outbox outbox;
    std::atomic<bool> cancel{false};
    std::atomic<bool> running{true};
    enum class Sent { kOk, kRetry, kRefused };
    auto call = [&](const v1::StageReport& report) -> grpc::Status {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      v1::StageReportResponse resp;
      grpc::Status s = scheduler_->Report(&ctx, report, &resp);
      if (s.ok() && resp.stop()) cancel = true;
      return s;
    };
    // A heartbeat: what is pending, in reports of bounded size. Events of a
    // report that could not be delivered stay pending; a refused one is
    // dropped (sending it again cannot succeed).
    auto beat = [&]() -> Sent {
      do {
        v1::StageReport report;
        report.set_lease_id(task.lease_id());
        report.set_worker(f_.name);
        outbox.Take(&report);
        grpc::Status s = call(report);
        if (s.ok()) continue;
        if (Retryable(s)) {
          outbox.Return(&report);
          return Sent::kRetry;
        }
        LogRefused(task, s, "a progress report");
        return Sent::kRefused;
      } while (!outbox.empty() && !cancel);
      return Sent::kOk;
    };
    // The stage's result is worth waiting for: a scheduler with --state
    // that restarts takes it when it is back. Progress first, then the
    // result on its own; a result refused is replaced by a failure that
    // says why, so the build ends with the real reason.
    auto finish = [&](v1::StageReport last) {
      auto give_up =
          std::chrono::steady_clock::now() + std::chrono::seconds(60);
      last.set_lease_id(task.lease_id());
      last.set_worker(f_.name);
      while (!outbox.empty() && beat() == Sent::kRetry) {
        if (std::chrono::steady_clock::now() >= give_up || stop_->load())
          return;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      bool replaced = false;
      while (true) {
        grpc::Status s = call(last);
        if (s.ok()) return;
        if (!Retryable(s)) {
          LogRefused(task, s, "the stage's result");
          if (replaced) return;
          replaced = true;
          v1::StageReport failed;
          failed.set_lease_id(task.lease_id());
          failed.set_worker(f_.name);
          failed.set_finished(true);
          failed.set_code(static_cast<int>(grpc::StatusCode::INTERNAL));
          failed.set_error(absl::StrCat("worker ", f_.name,
                                        " finished the stage but the scheduler "
                                        "refused its report: ",
                                        s.error_message()));
          last = std::move(failed);
          continue;
        }
        if (std::chrono::steady_clock::now() >= give_up || stop_->load()) {
          stagefarm::LogError(
              absl::StrCat("the scheduler was out of reach for 60 s; the "
                           "stage's result is in the stage cache: ",
                           s.error_message()),
              {{"worker", f_.name}, {"build", task.build_id()}});
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    };
    absl::Mutex beat_mu;
    absl::CondVar beat_cv;
    std::thread heartbeat([&] {
      absl::MutexLock lock(&beat_mu);
      auto last_ok = std::chrono::steady_clock::now();
      while (running) {
        beat_cv.WaitWithTimeout(&beat_mu, absl::Milliseconds(heartbeat_ms));
        if (!running) break;
        beat_mu.Unlock();
        // A refused report still proves the scheduler is there.
        if (beat() != Sent::kRetry) last_ok = std::chrono::steady_clock::now();
        beat_mu.Lock();
        // Shutting down, or the scheduler out of reach for 10 s (refused,
        // or a cut network where calls time out): the lease is lost by now
        // and the stage runs elsewhere, so stop.
        if (stop_->load() || std::chrono::steady_clock::now() - last_ok >=
                                 std::chrono::seconds(10)) {
          cancel = true;
        }
      }
    });
    engine::StageOutcome outcome;
    std::string execute_response;
    // What a build's content makes a library throw stops here: the stage
    // fails with the text, and the worker lives on.
    const std::string where =
        absl::StrCat("worker ", f_.name, ": stage ", task.stage_index());
    absl::StatusOr<engine::BuildResult> result =
        ContainExceptions(where, [&]() -> absl::StatusOr<engine::BuildResult> {
          if (task.spec().has_action()) {
            return RunAction(task, &cancel, &execute_response);
          }
          return Run(
              task,
              [&](const engine::BuildEvent& ev) {
                if (ev.kind == engine::BuildEvent::Kind::kStepStarted) {
                  StepStarted(task, ev);
                }
                v1::Event e = ToWire(ev);
                e.set_unix_time(UnixSeconds());
                outbox.Add(std::move(e));
              },
              &cancel, &outcome);
        });
    {
      absl::MutexLock lock(&beat_mu);
      running = false;
    }
    beat_cv.SignalAll();
    heartbeat.join();
    absl::StatusOr<v1::StageReport> made =
        ContainExceptions(where, [&]() -> absl::StatusOr<v1::StageReport> {
          return FinalReport(task, result, outcome, execute_response);
        });
    if (!made.ok()) {
      ++counters_.stages_failed;
      v1::StageReport failed;
      failed.set_finished(true);
      failed.set_code(static_cast<int>(made.status().code()));
      failed.set_error(std::string(made.status().message()));
      made = std::move(failed);
    }
    finish(*std::move(made));
    lease_files_.Forget(task.lease_id());
  }

  // The report that ends a stage: its result, or its failure.
  v1::StageReport FinalReport(const v1::StageTask& task,
                              const absl::StatusOr<engine::BuildResult>& result,
                              const engine::StageOutcome& outcome,
                              const std::string& execute_response) {
    v1::StageReport last;
    last.set_finished(true);
    if (result.ok() && task.spec().has_action()) {
      last.set_execute_response(execute_response);
      ++counters_.stages_done;
    } else if (result.ok()) {
      last.set_image_state(engine::ImageStateJson(outcome.state));
      if (task.assemble())
        result->manifest.digest.ToProto(last.mutable_manifest());
      last.set_steps_run(outcome.steps_run);
      last.set_steps_cached(outcome.steps_cached);
      ++counters_.stages_done;
      counters_.steps_run += outcome.steps_run;
      counters_.steps_cached += outcome.steps_cached;
    } else {
      ++counters_.stages_failed;
      absl::Status why = ForClient(result.status());
      last.set_code(static_cast<int>(why.code()));
      last.set_error(std::string(why.message()));
      // A full disk is the worker's fault, not the build's.
      last.set_worker_fault(
          absl::StrContains(result.status().message(), strerror(ENOSPC)));
    }
    stagefarm::Log(result.ok() ? "info" : "error",
                   result.ok() ? "stage-done" : "stage-failed",
                   {{"worker", f_.name},
                    {"build", task.build_id()},
                    {"stage", std::to_string(task.stage_index())},
                    {"lease", task.lease_id()},
                    {"error", result.ok() ? "" : result.status().ToString()}});
    return last;
  }

  // Presence: the stage this process holds and the step it is at, told to
  // the scheduler (Attend) and noted in WORK/leases (lease_files.h).
  void Hold(const v1::HeldStage& held) {
    if (absl::Status s = lease_files_.Note(held); !s.ok()) {
      stagefarm::LogError("cannot note the stage held: " + s.ToString(),
                          {{"worker", f_.name}});
    }
    v1::WorkerPresence message;
    *message.mutable_step() = held;
    absl::MutexLock lock(&write_mu_);
    if (attend_stream_ != nullptr) attend_stream_->Write(message);
  }

  void StepStarted(const v1::StageTask& task, const engine::BuildEvent& ev) {
    v1::HeldStage held;
    held.set_lease_id(task.lease_id());
    held.set_step(ev.step);
    held.set_instruction(ev.text);
    Hold(held);
    if (!f_.test_crash_marker.empty() &&
        absl::StrContains(ev.text, f_.test_crash_marker)) {
      // Test only: end as a process killed by a bug or the OOM killer
      // would. The short wait lets the step's presence message leave, as
      // it would have long before in a step that ran a while.
      stagefarm::LogError(
          "test-only fault (--test-crash-on-step-containing): aborting",
          {{"worker", f_.name},
           {"build", task.build_id()},
           {"step", std::to_string(ev.step)}});
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      struct rlimit no_core = {0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      std::abort();
    }
  }

  // The stages a previous process of this work directory held when it
  // ended, told to the scheduler at the first Attend.
  void FindLostStages() {
    std::vector<v1::HeldStage> found = lease_files_.Leftovers();
    for (const v1::HeldStage& held : found) {
      stagefarm::LogError(
          "the previous process of this worker ended while "
          "holding a stage",
          {{"worker", f_.name},
           {"lease", held.lease_id()},
           {"step", std::to_string(held.step())}});
    }
    absl::MutexLock lock(&attend_mu_);
    lost_ = std::move(found);
  }

  WorkerFlags f_;
  const LeaseFiles lease_files_{f_.work + "/leases"};
  const std::atomic<bool>* stop_;
  std::unique_ptr<executor::Executor> executor_;
  CasTarget cas_target_;
  std::shared_ptr<grpc::Channel> scheduler_channel_;
  std::unique_ptr<v1::Scheduler::Stub> scheduler_;
  absl::Mutex mu_, context_mu_;
  absl::Mutex run_mu_;  // shared: a stage runs; exclusive: pruning
  std::map<std::string, std::unique_ptr<Instance>> instances_
      ABSL_GUARDED_BY(mu_);
  Counters counters_;
  std::atomic<bool> had_room_{true};
  // Presence (Attend).
  const std::string incarnation_ = NewIncarnation();
  enum class AttendState { kUnknown, kAttending, kFailed, kUnsupported };
  absl::Mutex attend_mu_;
  AttendState attend_state_ ABSL_GUARDED_BY(attend_mu_) = AttendState::kUnknown;
  bool attend_stopped_ ABSL_GUARDED_BY(attend_mu_) = false;
  grpc::ClientContext* attend_ctx_ ABSL_GUARDED_BY(attend_mu_) = nullptr;
  std::vector<v1::HeldStage> lost_ ABSL_GUARDED_BY(attend_mu_);
  // Writes on the open stream, one at a time (steps of several slots).
  absl::Mutex write_mu_;
  grpc::ClientReaderWriter<v1::WorkerPresence, v1::AttendResponse>*
      attend_stream_ ABSL_GUARDED_BY(write_mu_) = nullptr;
};

void Worker::RegisterMetrics(Metrics* m) {
  Worker* w = this;
  int slots = f_.slots;
  auto read = [w](std::atomic<int64_t> Worker::Counters::*field) {
    return [w, field]() -> double {
      return static_cast<double>((w->counters().*field).load());
    };
  };
  m->Gauge("stagefarm_worker_slots", "Stages this worker runs at once", {},
           [slots] { return static_cast<double>(slots); });
  m->Gauge("stagefarm_worker_busy_slots", "Stages running now", {},
           read(&Worker::Counters::busy));
  const char* stages = "Stages finished since start, by result";
  m->Counter("stagefarm_worker_stages_total", stages, {{"result", "done"}},
             read(&Worker::Counters::stages_done));
  m->Counter("stagefarm_worker_stages_total", stages, {{"result", "failed"}},
             read(&Worker::Counters::stages_failed));
  const char* steps = "Steps of finished stages, by whether they ran";
  m->Counter("stagefarm_worker_steps_total", steps, {{"result", "run"}},
             read(&Worker::Counters::steps_run));
  m->Counter("stagefarm_worker_steps_total", steps, {{"result", "cached"}},
             read(&Worker::Counters::steps_cached));
  m->Gauge("stagefarm_worker_layer_cache_bytes",
           "Unpacked layers kept on disk (at the last check)", {},
           read(&Worker::Counters::cache_bytes));
  m->Counter("stagefarm_worker_disk_full_errors_total",
             "Stages failed because the work directory's disk was full", {},
             read(&Worker::Counters::disk_full));
  m->Counter("stagefarm_worker_layer_cache_evicted_bytes_total",
             "Unpacked layers removed to stay within --cache-bytes", {},
             read(&Worker::Counters::evicted_bytes));
}

}  // namespace

std::unique_ptr<WorkerDaemon> WorkerDaemon::Create(
    WorkerFlags flags, const std::atomic<bool>* stop) {
  return std::make_unique<Worker>(std::move(flags), stop);
}

}  // namespace stagefarm::worker
