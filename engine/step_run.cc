#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "blobstore/blob_files.h"
#include "cachekey/cache_key.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "engine/copy.h"
#include "engine/stage_runner.h"
#include "engine/user_db.h"
#include "executor/memory_kill.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/entitlements.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/parser.h"
#include "http/fetch.h"
#include "platform/emulation.h"
#include "snapshot/unchanged_dirs.h"

namespace stagefarm::engine {

// The paths a RUN's mounts would create in the rootfs, and which of them
// (with their parents) did not exist before, so they can be removed.
std::vector<std::string> StageRunner::MissingStubs(
    const std::string& root, const std::vector<std::string>& dests) {
  std::set<std::string> missing;
  for (const std::string& d : dests) {
    std::string cur;
    for (absl::string_view part : absl::StrSplit(d, '/', absl::SkipEmpty())) {
      absl::StrAppend(&cur, "/", part);
      struct stat st;
      if (lstat((root + cur).c_str(), &st) != 0) missing.insert(cur);
    }
  }
  std::vector<std::string> out(missing.begin(), missing.end());
  std::sort(out.rbegin(), out.rend());  // deepest first
  return out;
}

void StageRunner::RemoveStubs(const std::string& upper,
                              const std::vector<std::string>& stubs) {
  for (const std::string& s : stubs) {
    std::string p = upper + s;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      rmdir(p.c_str());  // only if empty
    } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
      unlink(p.c_str());
    }
  }
}

std::vector<std::string> StageRunner::RunArgs(const ExpandedStep& step,
                                              const dockerfile::RunInst& run) {
  return engine::RunArgs(step, run, Cfg());
}

// A RUN's cache key: the command, environment, user, working directory,
// network, and each mount with the content of its bind source.
absl::StatusOr<std::string> StageRunner::RunKey(
    const ExpandedStep& step, const dockerfile::RunInst& run,
    const std::vector<std::string>& args, const std::vector<std::string>& env,
    const std::string& user, const std::string& workdir) {
  cachekey::CacheKeyBuilder kb = KeyBuilder(step);
  kb.AddList("args", args).AddList("env", env).Add("user", user);
  kb.Add("workdir", workdir).Add("network", run.network);
  // Mounts: what they are, and the content of bind sources.
  for (const auto& m : run.mounts) {
    std::vector<std::string> f{
        m.type,    m.target, m.source, m.from, m.id,
        m.sharing, m.mode,   m.uid,    m.gid,  m.read_only ? "ro" : "rw"};
    if (m.type == "bind") {
      if (!m.from.empty()) {
        ASSIGN_OR_RETURN(std::string from_key, StageKey(m.from));
        f.push_back(from_key);
      } else {
        CopySource src{s_.request->context_dir, s_.ignore, false};
        ASSIGN_OR_RETURN(
            auto matches,
            MatchSources(src, {m.source.empty() ? "." : m.source}, {}));
        ASSIGN_OR_RETURN(std::string d, DigestSources(src, matches, {}));
        f.push_back(d);
      }
    }
    kb.AddList("mount", f);
  }
  std::string key = KeyOf(kb);
  return key;
}

// A cache mount's directory, shared by steps with the same id: locked for
// sharing=locked, a throwaway one for sharing=private while in use.
absl::Status StageRunner::CacheMount(const dockerfile::Mount& m,
                                     executor::ExecMount* em, RunMounts* out) {
  std::string id = m.id.empty() ? em->destination : m.id;
  bool throwaway = false;  // sharing=private's own copy while in use
  std::string dir =
      absl::StrCat(e_->options_.cache_mounts, "/", Sha256::HexOf(id));
  RETURN_IF_ERROR(MakeDirs(dir, 0755));
  if (!e_->options_.cache_mount_ids.empty()) {
    const std::string record =
        absl::StrCat(e_->options_.cache_mount_ids, "/", Sha256::HexOf(id));
    if (access(record.c_str(), F_OK) != 0) {
      // Only names the cache for `cache ls`: a failure is not the step's.
      (void)MakeDirs(e_->options_.cache_mount_ids, 0755);
      (void)WriteStringToFile(record, id);
    }
  }
  if (m.sharing == "locked") {
    out->locks.push_back(
        std::make_unique<FileLock>(dir, FileLock::Mode::kWait));
  } else if (m.sharing == "private") {
    // In use by another step: this one gets a fresh, throwaway cache.
    auto lock = std::make_unique<FileLock>(dir, FileLock::Mode::kTry);
    if (lock->held()) {
      out->locks.push_back(std::move(lock));
    } else {
      ASSIGN_OR_RETURN(dir, e_->snapshots_->TempDir("cache-private-"));
      out->scratch_dirs.push_back(dir);
      throwaway = true;
    }
  }
  // uid, gid and mode apply to the cache directory itself.
  uint32_t n = 0;
  if (!m.uid.empty() && absl::SimpleAtoi(m.uid, &n)) {
    (void)!chown(dir.c_str(), n, static_cast<gid_t>(-1));
  }
  if (!m.gid.empty() && absl::SimpleAtoi(m.gid, &n)) {
    (void)!chown(dir.c_str(), static_cast<uid_t>(-1), n);
  }
  if (!m.mode.empty()) {
    auto mode = ParseChmod(m.mode);
    if (mode.ok()) chmod(dir.c_str(), *mode);
  }
  em->source = dir;
  em->read_only = false;
  if (e_->options_.cache_sync != nullptr && !throwaway) {
    if (m.sharing == "locked") {
      // Steps on other machines wait too (after this machine's own lock).
      ASSIGN_OR_RETURN(std::unique_ptr<CacheMountSync::Hold> hold,
                       e_->options_.cache_sync->Lock(id));
      if (hold != nullptr) out->holds.push_back(std::move(hold));
    }
    absl::Status pulled = e_->options_.cache_sync->Pull(id, dir);
    if (!pulled.ok()) {
      Emit(BuildEvent::Kind::kNote,
           absl::StrCat("cache mount ", id,
                        ": not brought up to date: ", pulled.message()),
           0);
    }
    out->shared_caches.emplace_back(id, dir);
  }
  return absl::OkStatus();
}

// RUN --mount=type=bind,rw: the step writes to its own view of the
// source, thrown away afterwards (as BuildKit does): an overlay over a
// directory, a copy of a file.
absl::Status StageRunner::WritableCopy(const Instruction& inst,
                                       executor::ExecMount* em,
                                       RunMounts* out) {
  struct stat st;
  if (stat(em->source.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        At(inst), ": RUN --mount=type=bind: the source does not exist"));
  }
  ASSIGN_OR_RETURN(std::string dir, e_->snapshots_->TempDir("bind-rw-"));
  out->scratch_dirs.push_back(dir);
  if (!S_ISDIR(st.st_mode)) {
    const std::string copy = dir + "/file";
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(em->source));
    RETURN_IF_ERROR(WriteStringToFile(copy, data, st.st_mode & 07777));
    em->source = copy;
    return absl::OkStatus();
  }
  for (const char* sub : {"/upper", "/work", "/merged"}) {
    RETURN_IF_ERROR(MakeDirs(dir + sub, 0755));
  }
  // The upper directory's root takes the source's owner and mode, as the
  // view shows them.
  (void)!chown((dir + "/upper").c_str(), st.st_uid, st.st_gid);
  chmod((dir + "/upper").c_str(), st.st_mode & 07777);
  ASSIGN_OR_RETURN(std::unique_ptr<snapshot::OverlayMount> overlay,
                   snapshot::OverlayMount::Mount({em->source}, dir + "/upper",
                                                 dir + "/work", dir + "/merged",
                                                 e_->snapshots_->empty_dir()));
  em->source = overlay->path();
  out->overlays.push_back(std::move(overlay));
  return absl::OkStatus();
}

absl::Status StageRunner::AddMounts(const Instruction& inst,
                                    const dockerfile::RunInst& run,
                                    const std::string& workdir,
                                    RunMounts* out) {
  for (const auto& m : run.mounts) {
    executor::ExecMount em;
    em.destination = JoinWorkdir(workdir, m.target);
    if (m.type == "cache") {
      RETURN_IF_ERROR(CacheMount(m, &em, out));
    } else if (m.type == "tmpfs") {
      em.type = "tmpfs";
      if (!m.size.empty()) em.options = absl::StrCat("size=", m.size);
    } else if (m.type == "ssh") {
      // The client's SSH agent, as BuildKit forwards it: the socket bound
      // at /run/buildkit/ssh_agent.N and SSH_AUTH_SOCK naming the first.
      std::string id = m.id.empty() ? "default" : m.id;
      auto it = s_.request->ssh.find(id);
      if (it == s_.request->ssh.end()) {
        if (m.required) {
          return absl::InvalidArgumentError(absl::StrCat(
              At(inst), ": ssh agent ", id,
              " is required but was not given (--ssh ", id, "[=SOCKET])"));
        }
        continue;
      }
      em.source = it->second;
      em.destination =
          m.target.empty()
              ? absl::StrCat("/run/buildkit/ssh_agent.", out->ssh_agents)
              : JoinWorkdir(workdir, m.target);
      em.read_only = false;  // a socket is written to
      if (out->ssh_agents++ == 0) {
        out->env.push_back(absl::StrCat("SSH_AUTH_SOCK=", em.destination));
      }
    } else if (m.type == "secret") {
      std::string id =
          m.id.empty() ? m.target.substr(m.target.rfind('/') + 1) : m.id;
      auto it = s_.request->secrets.find(id);
      if (it == s_.request->secrets.end()) {
        if (m.required) {
          return absl::InvalidArgumentError(
              absl::StrCat(At(inst), ": secret ", id,
                           " is required but was not given (--secret id=", id,
                           ",src=FILE)"));
        }
        continue;
      }
      em.source = it->second;
      em.destination = m.target.empty() ? absl::StrCat("/run/secrets/", id)
                                        : JoinWorkdir(workdir, m.target);
      em.read_only = true;
    } else if (m.type == "bind") {
      std::string root = s_.request->context_dir;
      if (!m.from.empty()) {
        ASSIGN_OR_RETURN(View v, ViewOf(m.from));
        root = v.path;
        out->views.push_back(std::move(v));
      }
      ASSIGN_OR_RETURN(
          em.source,
          ResolveInRoot(root, m.source.empty() ? "/" : m.source, true));
      em.read_only = !m.read_only_set || m.read_only;
      if (!em.read_only) RETURN_IF_ERROR(WritableCopy(inst, &em, out));
    } else {
      return absl::UnimplementedError(
          absl::StrCat(At(inst), ": RUN --mount=type=", m.type,
                       " is not supported by this version"));
    }
    // Mount points runc creates are removed afterwards, except those of
    // cache and tmpfs mounts, which stay as empty directories in the
    // layer as BuildKit leaves them.
    if (m.type != "cache" && m.type != "tmpfs")
      out->dests.push_back(em.destination);
    out->mounts.push_back(std::move(em));
  }
  return absl::OkStatus();
}

// The network a RUN gets: its own namespace by default, none, or the
// host's when the build has the network.host entitlement and this engine
// permits it. Checked before the cache: a build without the entitlement
// is refused even where the step would come from the cache.
absl::StatusOr<executor::Network> StageRunner::RunNetwork(
    const Instruction& inst, const dockerfile::RunInst& run) {
  RETURN_IF_ERROR(dockerfile::CheckEntitled(inst, s_.request->entitlements,
                                            s_.request->dockerfile_name));
  if (run.security == "insecure") {
    return absl::UnimplementedError(
        absl::StrCat(At(inst),
                     ": RUN --security=insecure is not supported by this "
                     "version"));
  }
  if (run.network == "none" || e_->options_.force_no_network) {
    return executor::Network::kNone;
  }
  if (run.network == "host") {
    if (!e_->options_.permit_host_network) {
      return absl::PermissionDeniedError(absl::StrCat(
          At(inst), ": RUN --network=host: this worker does not permit the ",
          dockerfile::kNetworkHost,
          " entitlement (stagefarm-worker --allow-insecure-entitlement ",
          dockerfile::kNetworkHost, ")"));
    }
    return executor::Network::kHost;
  }
  return executor::Network::kSandbox;
}

absl::Status StageRunner::RunRun(const ExpandedStep& step,
                                 const dockerfile::RunInst& run) {
  const Instruction& inst = *step.instruction;
  json& cfg = Cfg();
  std::vector<std::string> args = RunArgs(step, run);
  std::vector<std::string> env = step.run_env;
  bool has_path = false;
  for (const auto& e : env) has_path |= EnvKey(e) == "PATH";
  if (!has_path) env.push_back(absl::StrCat("PATH=", image::kDefaultPath));
  std::string user = cfg.value("User", "");
  std::string workdir = Workdir();
  ASSIGN_OR_RETURN(executor::Network network, RunNetwork(inst, run));

  ASSIGN_OR_RETURN(std::string key,
                   RunKey(step, run, args, env, user, workdir));
  std::string history = step.history.empty()
                            ? absl::StrCat("RUN ", absl::StrJoin(args, " "))
                            : step.history;
  ASSIGN_OR_RETURN(std::optional<double> started,
                   Begin(key, history, Display(step)));
  if (!started) return absl::OkStatus();  // from the cache
  RETURN_IF_ERROR(platform::CheckRunnable(platform_));
  ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
  ASSIGN_OR_RETURN(UserIds ids, ResolveUser(rootfs.path(), user, true));

  executor::ExecSpec spec;
  spec.rootfs = rootfs.path();
  spec.args = args;
  spec.env = env;
  spec.cwd = workdir;
  spec.uid = ids.uid;
  spec.gid = ids.gid;
  spec.additional_gids = ids.additional;
  spec.network = network;
  spec.memory_bytes = e_->options_.memory_bytes;
  spec.pids_limit = e_->options_.pids_limit;
  spec.cancel = s_.cancel;
  std::vector<std::string> dests{"/proc", "/dev", "/sys"};
  if (network != executor::Network::kNone) {
    dests.push_back("/etc/resolv.conf");
    dests.push_back("/etc/hosts");
  }
  RunMounts mounts;
  mounts.dests = std::move(dests);
  RETURN_IF_ERROR(AddMounts(inst, run, workdir, &mounts));
  spec.mounts = std::move(mounts.mounts);
  // Not in the step's key: an agent changes nothing the step makes.
  spec.env.insert(spec.env.end(), mounts.env.begin(), mounts.env.end());
  std::vector<std::string> stubs = MissingStubs(rootfs.path(), mounts.dests);
  ASSIGN_OR_RETURN(std::string log_dir, e_->snapshots_->TempDir("log-"));
  mounts.scratch_dirs.push_back(log_dir);
  LogLimits limits = e_->options_.log_limits;
  if (s_.request->log_max_bytes > 0) {
    limits.live_bytes = s_.request->log_max_bytes;
  }
  StepLog log(limits, log_dir, [this](std::string chunk) {
    Emit(BuildEvent::Kind::kLog, std::move(chunk), 0);
  });
  spec.on_output = [&log](absl::string_view chunk) { log.Write(chunk); };
  absl::StatusOr<executor::ExecResult> result = e_->executor_->Run(spec);
  std::string clipped = KeepFullLog(&log);
  // What the step left in shared caches, published while they are still
  // held (a step that did not run publishes nothing).
  for (const auto& [id, dir] : mounts.shared_caches) {
    if (!result.ok()) break;
    absl::Status pushed = e_->options_.cache_sync->Push(id, dir);
    if (!pushed.ok()) {
      Emit(BuildEvent::Kind::kNote,
           absl::StrCat("cache mount ", id, ": not shared: ", pushed.message()),
           0);
    }
  }
  mounts.Release();
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat(At(inst), ": ", Display(step), ": ",
                                     result.status().message()));
  }
  if (result->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        At(inst), ": process \"", absl::StrJoin(args, " "),
        "\" did not complete successfully: ", executor::DescribeExit(*result),
        result->output_tail.empty() ? "" : "\n--- last output ---\n",
        result->output_tail, clipped.empty() ? "" : "\n--- ", clipped));
  }
  RETURN_IF_ERROR(rootfs.mount->Unmount());
  RemoveStubs(rootfs.upper, stubs);
  // The directories copied up only for the stubs (etc/ for hosts and
  // resolv.conf) or for files made and removed: a RUN that changed nothing
  // makes no layer, as with BuildKit.
  snapshot::RemoveUnchangedDirs(rootfs.upper, rootfs.lowers);
  return Finish(std::move(rootfs), key, history, *started);
}

// After a RUN: when its live output was clipped, stores the whole output
// and says where it is (a note event carrying the blob); returns the note
// ("" when nothing was clipped).
std::string StageRunner::KeepFullLog(StepLog* log) {
  if (!log->clipped()) return "";
  absl::StatusOr<std::optional<Digest>> full =
      log->Finish(e_->blobs_, e_->options_.ns);
  std::string hint;
  if (!full.ok()) {
    hint = absl::StrCat("the full output could not be stored: ",
                        full.status().message());
  } else if (full->has_value()) {
    hint = absl::StrCat("the full output: stagefarm logs --blob ",
                        (*full)->ToString());
  }
  BuildEvent ev = Event(BuildEvent::Kind::kNote, log->Note(hint), 0);
  if (full.ok()) ev.full_log = *full;
  s_.emit(ev);
  return ev.text;
}

}  // namespace stagefarm::engine
