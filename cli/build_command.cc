// `stagefarm build`: the request from the flags, one build a platform
// (here or on a farm), the reproducibility check, attestations, outputs
// and pushes.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/attestations.h"
#include "cli/build_record.h"
#include "cli/disk_usage.h"
#include "cli/exit_status.h"
#include "cli/farm_client.h"
#include "cli/interrupt.h"
#include "cli/local_commands.h"
#include "cli/local_history.h"
#include "cli/progress.h"
#include "cli/vcs.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "engine/user_db.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/entitlements.h"
#include "image/image_archive.h"
#include "image/image_diff.h"
#include "platform/emulation.h"
#include "platform/platform.h"
#include "registry/client.h"
#include "registry/reference.h"

namespace stagefarm::cli {
namespace {

absl::StatusOr<std::map<std::string, std::string>> ParseKeyValues(
    const std::string& text, absl::string_view flag) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, " \"", text, "\": expected KEY=VALUE[,KEY=VALUE...]"));
    }
    out[std::string(part.substr(0, eq))] = std::string(part.substr(eq + 1));
  }
  return out;
}

struct Output {
  std::string type;
  std::string dest;
  std::vector<std::string> push;  // type=registry / image,push=true: names
};

absl::StatusOr<Output> ParseOutput(const std::string& text) {
  if (text.find('=') == std::string::npos) {
    return Output{"local", text, {}};
  }
  ASSIGN_OR_RETURN(auto kv, ParseKeyValues(text, "--output"));
  Output o;
  o.type = kv["type"];
  o.dest = kv["dest"];
  if (o.type == "registry" || o.type == "image") {
    // As in buildx: type=registry is type=image,push=true.
    std::string push = kv.count("push") ? kv["push"] : "";
    if (o.type == "registry" ? push == "false" : push != "true") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--output \"", text,
          "\": only pushing outputs are supported (type=registry, or "
          "type=image with push=true); -t tags the local image"));
    }
    if (kv["name"].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--output \"", text, "\": needs name=REGISTRY/REPO:TAG"));
    }
    RETURN_IF_ERROR(registry::ParseReference(kv["name"]).status());
    o.push.push_back(kv["name"]);
    return o;
  }
  if (o.type != "docker" && o.type != "oci" && o.type != "local") {
    return absl::InvalidArgumentError(
        absl::StrCat("--output \"", text,
                     "\": type must be docker, oci, local, registry or image"));
  }
  if (o.dest.empty() || o.dest == "-") {
    return absl::InvalidArgumentError(
        absl::StrCat("--output \"", text, "\": needs dest=PATH"));
  }
  return o;
}

absl::StatusOr<engine::BuildRequest> MakeRequest(const BuildFlags& flags) {
  engine::BuildRequest req;
  std::error_code ec;
  if (!std::filesystem::is_directory(flags.context, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("context \"", flags.context, "\" is not a directory"));
  }
  char* real = realpath(flags.context.c_str(), nullptr);
  req.context_dir = real != nullptr ? real : flags.context;
  free(real);
  std::string file =
      flags.file.empty() ? req.context_dir + "/Dockerfile" : flags.file;
  auto text = ReadFileToString(file);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the Dockerfile: ", text.status().message()));
  }
  req.dockerfile = *text;
  req.dockerfile_name = flags.file.empty() ? "Dockerfile" : flags.file;
  for (const std::string& candidate :
       dockerfile::IgnoreFileCandidates(file, req.context_dir)) {
    auto ignore = ReadFileToString(candidate);
    if (ignore.ok()) {
      req.dockerignore = *ignore;
      break;
    }
  }
  req.plan_options.target = flags.target;
  for (const std::string& a : flags.build_args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos) {
      // docker: --build-arg NAME takes the value from the environment.
      const char* v = getenv(a.c_str());
      if (v != nullptr) req.plan_options.build_args[a] = v;
      continue;
    }
    req.plan_options.build_args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  for (const std::string& l : flags.labels) {
    size_t eq = l.find('=');
    req.labels[l.substr(0, eq)] =
        eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  req.no_cache = flags.no_cache;
  req.log_max_bytes = flags.log_max_bytes;
  for (const std::string& a : flags.allow) {
    for (absl::string_view e : absl::StrSplit(a, ',', absl::SkipEmpty())) {
      req.entitlements.insert(std::string(e));
    }
  }
  if (absl::Status s = dockerfile::CheckEntitlementNames(req.entitlements);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--allow: ", s.message()));
  }
  for (const std::string& a : flags.ssh) {
    // buildx's ID[=SOCKET]: "default" is $SSH_AUTH_SOCK.
    size_t eq = a.find('=');
    std::string id = a.substr(0, eq);
    std::string path = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (id.empty()) id = "default";
    if (path.empty()) {
      const char* sock = getenv("SSH_AUTH_SOCK");
      if (sock == nullptr || *sock == '\0') {
        return absl::InvalidArgumentError(absl::StrCat(
            "--ssh ", a, ": no agent (SSH_AUTH_SOCK is not set; give ", id,
            "=SOCKET)"));
      }
      path = sock;
    }
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ssh ", id, ": ", path,
          " is not an agent's socket (key files are not supported: add "
          "the key to an agent with ssh-add)"));
    }
    char* r = realpath(path.c_str(), nullptr);
    req.ssh[id] = r != nullptr ? r : path;
    free(r);
  }
  for (const std::string& s : flags.secrets) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValues(s, "--secret"));
    std::string id = kv["id"];
    std::string src = kv.count("src") ? kv["src"] : kv["source"];
    if (id.empty() || src.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret \"", s, "\": expected id=ID,src=FILE"));
    }
    char* r = realpath(src.c_str(), nullptr);
    if (r == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret ", id, ": cannot read ", src));
    }
    req.secrets[id] = r;
    free(r);
  }
  std::string epoch = flags.source_date_epoch;
  if (epoch.empty()) {
    if (const char* e = getenv("SOURCE_DATE_EPOCH")) epoch = e;
  }
  if (!epoch.empty()) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(epoch, &v) || v < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--source-date-epoch \"", epoch, "\": expected seconds since 1970"));
    }
    req.source_date_epoch = v;
  }
  std::optional<archives::Compression> compression =
      archives::ParseCompression(flags.compression);
  if (!compression) {
    return absl::InvalidArgumentError(
        "--compression must be gzip, zstd or uncompressed");
  }
  req.compression = *compression;
  int max_level = *compression == archives::Compression::kZstd ? 22 : 12;
  if (flags.compression_level < 0 || flags.compression_level > max_level) {
    return absl::InvalidArgumentError(
        absl::StrCat("--compression-level must be between 1 and ", max_level,
                     " for ", flags.compression));
  }
  req.compression_level = flags.compression_level;
  req.tags = flags.tags;
  return req;
}

}  // namespace

namespace {

// Writes a type=local output: a new directory appears whole or not at
// all; an existing one is written into, as docker buildx does.
absl::Status WriteLocalOutput(engine::BuildEngine* engine,
                              const engine::ImageState& image,
                              const std::string& dest) {
  struct stat st;
  if (stat(dest.c_str(), &st) == 0) return engine->ExportRootfs(image, dest);
  std::string tmp = absl::StrCat(dest, ".tmp-", getpid());
  absl::Status s = engine->ExportRootfs(image, tmp);
  if (s.ok() && rename(tmp.c_str(), dest.c_str()) != 0) {
    s = absl::InternalError(
        absl::StrCat("cannot create ", dest, ": ", strerror(errno)));
  }
  if (!s.ok()) (void)RemoveAll(tmp);
  return s;
}

// The platforms to build: --platform's list, else this machine's.
absl::StatusOr<std::vector<platform::Platform>> BuildPlatforms(
    const BuildFlags& flags, const std::vector<Output>& outputs) {
  if (flags.platform.empty()) return std::vector{platform::Host()};
  auto list = platform::ParseList(flags.platform);
  if (!list.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--platform: ", list.status().message()));
  }
  if (list->size() > 1) {
    for (const Output& o : outputs) {
      if (o.type == "docker") {
        return absl::InvalidArgumentError(
            "--output type=docker holds one platform: build with one "
            "--platform, or use type=oci or type=registry for several");
      }
    }
  }
  return list;
}

}  // namespace

namespace {

// --verify-reproducible on this machine: `first` built again without
// cache; the result (with `reproduced` set) when both images are the same,
// else FAILED_PRECONDITION naming the first layer and file that differ.
absl::StatusOr<engine::BuildResult> VerifyLocally(
    Local* l, const engine::BuildRequest& request, engine::BuildResult first,
    const std::function<void(const engine::BuildEvent&)>& on_event) {
  engine::BuildRequest again = request;
  again.no_cache = true;
  again.tags.clear();
  absl::StatusOr<engine::BuildResult> second =
      l->engine()->Build(again, on_event, &Cancelled());
  if (!second.ok()) {
    if (absl::IsCancelled(second.status())) return second.status();
    return absl::Status(
        second.status().code(),
        absl::StrCat("the rebuild that checks reproducibility failed: ",
                     second.status().message()));
  }
  const Digest& a = first.manifest.digest;
  const Digest& b = second->manifest.digest;
  if (a == b) {
    first.reproduced = b.hash();
    return first;
  }
  absl::StatusOr<std::string> where = image::FirstDifference(l->images(), a, b);
  return absl::FailedPreconditionError(absl::StrCat(
      "not reproducible: the build made ", image::OciDigest(a),
      ", the rebuild without cache ", image::OciDigest(b), ": ",
      where.ok()
          ? *where
          : absl::StrCat("(comparing them: ", where.status().message(), ")")));
}

// One build a platform, all at once: a step they share (a FROM
// --platform=$BUILDPLATFORM stage that does not use the target's args) runs
// once, the others wait for it and take it from the cache
// (BuildEngine::TryClaim). The first failure stops the others. Returns the
// first real failure, else a cancellation, else OK with a result a
// platform in *results.
absl::Status RunPlatformBuilds(
    Local* l, const BuildFlags& flags, const engine::BuildRequest& req,
    const std::vector<platform::Platform>& platforms, const std::string& server,
    const AttestOptions& attest, const std::string& subject_name,
    Progress* progress, std::vector<engine::BuildResult>* results) {
  const bool multi = platforms.size() > 1;
  std::vector<absl::StatusOr<engine::BuildResult>> outcomes(
      platforms.size(), absl::UnknownError("not run"));
  absl::Mutex progress_mu;
  auto build_one = [&](size_t i) {
    const platform::Platform& p = platforms[i];
    engine::BuildRequest one = req;
    one.plan_options.target_platform = p.String();
    one.plan_options.build_platform = platform::Host().String();
    if (multi) one.tags.clear();  // the index is tagged after
    std::string prefix = multi ? p.String() + " " : "";
    std::string trace = flags.trace;
    if (multi && !trace.empty()) {
      const bool json = absl::EndsWith(trace, ".json");
      if (json) trace.resize(trace.size() - 5);
      absl::StrAppend(&trace, "-", p.DirName(), json ? ".json" : "");
    }
    // A build on this machine goes into its history as it runs.
    LocalHistory history(l->home(), LocalOptions());
    BuildRecorder recorder(
        one, "local",
        server.empty() ? std::function<void(const v1::BuildRecord&)>(
                             [&history](const v1::BuildRecord& r) {
                               (void)history.Save(r);  // a view; best effort
                             })
                       : nullptr);
    auto on_event = [&](const engine::BuildEvent& ev) {
      if (server.empty()) recorder.OnEvent(ev);
      absl::MutexLock lock(&progress_mu);
      if (prefix.empty()) return progress->OnEvent(ev);
      engine::BuildEvent named = ev;
      named.stage = prefix + ev.stage;
      progress->OnEvent(named);
    };
    absl::StatusOr<engine::BuildResult> result;
    if (server.empty()) {
      result = l->engine()->Build(one, on_event, &Cancelled());
      if (result.ok() && flags.verify_reproducible) {
        result = VerifyLocally(l, one, *std::move(result),
                               [&](const engine::BuildEvent& ev) {
                                 engine::BuildEvent named = ev;
                                 named.stage = "rebuild " + ev.stage;
                                 on_event(named);
                               });
      }
      v1::BuildRecord record =
          recorder.Finish(result.status(), result.ok() ? &*result : nullptr);
      if (!trace.empty()) {
        absl::Status s = WriteTrace(record, trace);
        if (!s.ok()) {
          std::cerr << "warning: no trace written: " << s.message() << "\n";
        }
      }
    } else {
      FarmBuildOptions fo;
      fo.server = server;
      if (attest.provenance) {
        fo.provenance = attest.provenance_max ? "max" : "min";
      }
      fo.subject_name = subject_name;
      fo.verify_reproducible = flags.verify_reproducible;
      if (attest.provenance) {
        VcsInfo vcs = ReadVcsInfo(req.context_dir);
        fo.vcs_source = vcs.source;
        fo.vcs_revision = vcs.revision;
      }
      fo.reattach = std::chrono::seconds(flags.reattach_seconds);
      fo.trace_path = trace;
      std::string cache_dir = l->home() + "/statcache";
      if (MakeDirs(cache_dir, 0700).ok()) {
        fo.stat_cache_file =
            cache_dir + "/" + Digest::Of(req.context_dir).hash().substr(0, 32);
      }
      result =
          FarmBuild(fo, l->remote(), l->images(), one, on_event, &Cancelled());
    }
    if (!result.ok() && multi && !absl::IsCancelled(result.status())) {
      result = absl::Status(result.status().code(),
                            absl::StrCat("building for ", p.String(), ": ",
                                         result.status().message()));
    }
    outcomes[i] = std::move(result);
  };
  if (!multi) {
    build_one(0);
  } else {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < platforms.size(); ++i) {
      threads.emplace_back([&, i] {
        build_one(i);
        if (!outcomes[i].ok() && !absl::IsCancelled(outcomes[i].status())) {
          Cancelled().store(true);  // stop the other platforms
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  absl::Status failed;
  for (auto& o : outcomes) {
    if (o.ok()) {
      results->push_back(*std::move(o));
    } else if (failed.ok() ||
               (absl::IsCancelled(failed) && !absl::IsCancelled(o.status()))) {
      failed = o.status();
    }
  }
  return failed;
}

// The --output files: type=local a directory (one a platform, named as
// buildx names them, for several), docker and oci archives of `made` (a
// docker archive holds the one image, without attestations).
absl::Status WriteOutputs(Local* l, const std::vector<Output>& outputs,
                          const std::vector<platform::Platform>& platforms,
                          const std::vector<engine::BuildResult>& results,
                          const Digest& made,
                          const std::vector<std::string>& names) {
  const bool multi = platforms.size() > 1;
  for (const Output& o : outputs) {
    if (!o.push.empty()) continue;  // pushed after
    if (o.type == "local") {
      for (size_t i = 0; i < results.size(); ++i) {
        std::string dest =
            multi ? absl::StrCat(o.dest, "/", platforms[i].DirName()) : o.dest;
        if (multi) RETURN_IF_ERROR(MakeDirs(o.dest));
        RETURN_IF_ERROR(WriteLocalOutput(l->engine(), results[i].image, dest));
      }
      continue;
    }
    Digest what = o.type == "docker" && results.size() == 1
                      ? results[0].manifest.digest
                      : made;
    RETURN_IF_ERROR(image::ExportImage(l->images(), what, names,
                                       o.type == "docker"
                                           ? image::ArchiveFormat::kDocker
                                           : image::ArchiveFormat::kOci,
                                       o.dest));
  }
  return absl::OkStatus();
}

}  // namespace

int BuildCommand(const LocalOptions& local, const BuildFlags& flags) {
  auto start = std::chrono::steady_clock::now();
  auto req = MakeRequest(flags);
  if (!req.ok()) return Fail(req.status());
  std::vector<Output> outputs;
  for (const std::string& o : flags.outputs) {
    auto out = ParseOutput(o);
    if (!out.ok()) return Fail(out.status());
    outputs.push_back(*out);
  }
  auto platforms = BuildPlatforms(flags, outputs);
  if (!platforms.ok()) return Fail(platforms.status());
  auto attest_options =
      ParseAttestFlags(flags.provenance, flags.sbom, flags.attest);
  if (!attest_options.ok()) return Fail(attest_options.status());
  if (flags.verify_reproducible && !req->source_date_epoch) {
    return Fail(absl::InvalidArgumentError(
        "--verify-reproducible needs --source-date-epoch SECONDS (or "
        "SOURCE_DATE_EPOCH in the environment): a reproducible build takes "
        "its times from it"));
  }
  std::string started_at = Rfc3339(time(nullptr));
  const bool multi = platforms->size() > 1;
  std::vector<std::string> pushes;
  for (const Output& o : outputs) {
    pushes.insert(pushes.end(), o.push.begin(), o.push.end());
  }
  for (const std::string& t : flags.tags) {
    auto n = image::NormalizeReference(t);
    if (!n.ok()) return Fail(n.status());
    if (flags.push) {
      auto r = registry::ParseReference(t);
      if (!r.ok()) return Fail(r.status());
      pushes.push_back(t);
    }
  }
  if (flags.push && flags.tags.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--push needs a name to push to: -t REGISTRY/REPO:TAG"));
  }
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  std::string server = flags.server;
  if (server.empty()) {
    if (const char* env = getenv("STAGEFARM_SERVER")) server = env;
  }
  if (!server.empty() && (*l)->remote() == nullptr) {
    return Fail(absl::InvalidArgumentError(
        "--server needs the farm's CAS: pass --cas HOST:PORT or set "
        "STAGEFARM_CAS"));
  }
  InstallSignalHandlers();
  std::unique_ptr<Progress> progress = MakeProgress(flags.progress, stderr);
  std::vector<engine::BuildResult> results;
  std::string subject_name = flags.tags.empty()
                                 ? std::string()
                                 : *image::NormalizeReference(flags.tags[0]);
  absl::Status failed = RunPlatformBuilds(l->get(), flags, *req, *platforms,
                                          server, *attest_options, subject_name,
                                          progress.get(), &results);
  progress->Finish();
  if (!failed.ok()) {
    if (absl::IsCancelled(failed)) {
      // Cancelled here (Ctrl-C), or elsewhere (stagefarm cancel): say which.
      if (Cancelled().load()) {
        std::cerr << "build cancelled\n";
      } else {
        std::cerr << "build " << failed.message() << "\n";
      }
      return 130;
    }
    return Fail(failed);
  }
  // What the build made: one image, or an index of one a platform.
  Digest made = results[0].manifest.digest;
  int steps_run = 0, steps_cached = 0;
  for (const engine::BuildResult& r : results) {
    steps_run += r.steps_run;
    steps_cached += r.steps_cached;
  }
  std::vector<std::string> names;
  for (const std::string& t : flags.tags) {
    names.push_back(*image::NormalizeReference(t));
  }
  if (multi || attest_options->any()) {
    // An index: the platforms' images, and their attestations.
    std::vector<BuiltImage> built;
    for (size_t i = 0; i < results.size(); ++i) {
      built.push_back({{(*platforms)[i], results[i].manifest},
                       results[i].image,
                       results[i].provenance,
                       results[i].reproduced});
    }
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    std::string builder_id = server.empty()
                                 ? absl::StrCat("stagefarm://", host)
                                 : absl::StrCat("stagefarm://", server);
    auto index =
        AttachAttestations(l->get(), *attest_options, *req, built, names,
                           builder_id, started_at, Rfc3339(time(nullptr)));
    if (!index.ok()) return Fail(index.status());
    made = index->digest;
    for (const std::string& n : names) {
      if (absl::Status s = (*l)->images()->Tag(n, made); !s.ok()) {
        return Fail(s);
      }
    }
  }
  if (absl::Status s =
          WriteOutputs(l->get(), outputs, *platforms, results, made, names);
      !s.ok()) {
    return Fail(s);
  }
  for (const std::string& ref : pushes) {
    auto pushed = (*l)->registry()->Push((*l)->images(), made, ref,
                                         [&](const std::string& line) {
                                           if (flags.progress != "quiet")
                                             std::cerr << line << "\n";
                                         });
    if (!pushed.ok()) return Fail(pushed.status());
  }
  // The local store's bound (STAGEFARM_MAX_BYTES), kept after each build.
  absl::StatusOr<Pruned> pruned = KeepBound(l->get());
  if (!pruned.ok()) return Fail(pruned.status());
  if (flags.progress != "quiet" && pruned->blobs + pruned->snapshots > 0) {
    std::cerr << "freed "
              << HumanBytes(pruned->blob_bytes + pruned->snapshot_bytes)
              << " to stay within STAGEFARM_MAX_BYTES\n";
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (flags.progress != "quiet") {
    std::string what =
        multi ? absl::StrCat(results.size(), " platforms, index ") : "";
    std::cerr << absl::StrFormat(
        "built %s%s in %.2fs (%d steps run, %d cached)\n", what,
        image::OciDigest(made), secs, steps_run, steps_cached);
    for (const std::string& n : names) std::cerr << "tagged " << n << "\n";
  }
  std::cout << image::OciDigest(made) << "\n";
  return 0;
}

}  // namespace stagefarm::cli
