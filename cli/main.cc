// stagefarm: the command-line client.
//
// Builds and images run on the embedded engine (cli/local.h); cas talks to a
// CAS server; parse and plan show the front end's view of a Dockerfile. The
// cluster commands arrive with the farm and say so until then.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cluster.h"
#include "cli/farm_client.h"
#include "cli/local.h"
#include "cli/local_commands.h"
#include "cli/progress.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "contexttree/context_upload.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/dump.h"
#include "frontend/dockerfile/parser.h"
#include "frontend/dockerfile/plan.h"
#include "frontend/dockerfile/plan_format.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace stagefarm {
namespace {

constexpr int kUsageError = 2;

absl::StatusOr<Digest> ParseDigestArg(const std::string& arg) {
  std::vector<std::string> parts = absl::StrSplit(arg, '/');
  int64_t size = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &size)) {
    return absl::InvalidArgumentError(
        "digest \"" + arg + "\": expected HASH/SIZE (sha256 hex, bytes)");
  }
  return Digest::Parse(parts[0], size, "digest");
}

// Reads a whole regular file; a clear error for anything else.
absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(path + (std::filesystem::exists(path, ec)
                                           ? ": not a regular file"
                                           : ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

int Fail(const absl::Status& status) {
  std::cerr << "stagefarm: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? kUsageError : 1;
}

// `stagefarm logs BUILD --step N [--stage S] [--full]`: one step's output,
// as the live log has it, or whole (the kept blob) with --full. Raw bytes
// to stdout, so a redirect gets exactly what the step printed.
int StepLogCommand(cli::LocalOptions local, const std::string& server,
                   const std::string& build, const std::string& stage, int step,
                   bool full) {
  struct Seen {
    std::string text;
    std::optional<Digest> full_log;
  };
  std::map<std::string, Seen> seen;
  absl::Status s =
      cli::WatchBuild(server, build, [&](const engine::BuildEvent& ev) {
        if (ev.step != step || (!stage.empty() && ev.stage != stage)) return;
        if (ev.kind == engine::BuildEvent::Kind::kStepStarted) {
          seen[ev.stage];
        } else if (ev.kind == engine::BuildEvent::Kind::kLog) {
          seen[ev.stage].text += ev.text;
        } else if (ev.full_log) {
          seen[ev.stage].full_log = ev.full_log;
        }
      });
  if (seen.empty()) {
    if (!s.ok() && !absl::IsFailedPrecondition(s)) return Fail(s);
    return Fail(absl::NotFoundError(
        absl::StrCat("build ", build, ": no step ", step,
                     stage.empty() ? "" : absl::StrCat(" in stage ", stage),
                     " ran (cached steps print nothing)")));
  }
  if (seen.size() > 1) {
    std::vector<std::string> names;
    for (const auto& [name, unused] : seen) names.push_back(name);
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "build ", build, ": several stages have a step ", step,
        "; pass --stage with one of: ", absl::StrJoin(names, ", "))));
  }
  const Seen& one = seen.begin()->second;
  if (full && one.full_log) {
    auto instance = cli::BuildInstance(server, build);
    if (!instance.ok()) return Fail(instance.status());
    local.server = server;
    local.cas_instance = *instance;
    if (local.cas_address.empty()) {
      auto cas = cli::FarmCas(server);
      if (!cas.ok()) return Fail(cas.status());
      local.cas_address = *cas;
    }
    return cli::LogBlobCommand(local, *one.full_log);
  }
  std::fwrite(one.text.data(), 1, one.text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

struct CasFlags {
  std::string address;
  std::string instance;
};

absl::StatusOr<CasClient> Connect(const CasFlags& flags) {
  std::string address = flags.address;
  if (address.empty()) {
    const char* env = std::getenv("STAGEFARM_CAS");
    if (env != nullptr) address = env;
  }
  if (address.empty()) {
    return absl::InvalidArgumentError(
        "no CAS address: pass --cas HOST:PORT or set STAGEFARM_CAS");
  }
  return CasClient(CasClient::Connect(address), flags.instance);
}

int CasPut(const CasFlags& flags, const std::vector<std::string>& files) {
  absl::StatusOr<CasClient> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  for (const std::string& file : files) {
    Digest digest;
    absl::Status s = client->WriteFile(file, &digest);
    if (!s.ok())
      return Fail(
          absl::Status(s.code(), file + ": " + std::string(s.message())));
    std::cout << digest.ToString() << "  " << file << "\n";
  }
  return 0;
}

// Uploads a build context: prints the root Directory's HASH/SIZE, and what
// was checked and sent on stderr. The stat cache lives under
// $STAGEFARM_HOME/statcache, one file per context directory.
int CasPushContext(const CasFlags& flags, const std::string& dir) {
  auto t0 = std::chrono::steady_clock::now();
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) {
    return Fail(absl::NotFoundError("context " + dir + ": no such directory"));
  }
  std::string context = real;
  free(real);
  std::optional<dockerfile::DockerignoreMatcher> ignore;
  std::ifstream ignore_file(context + "/.dockerignore", std::ios::binary);
  if (ignore_file) {
    std::string text((std::istreambuf_iterator<char>(ignore_file)), {});
    auto m = dockerfile::DockerignoreMatcher::Create(
        dockerfile::ReadDockerignore(text));
    if (!m.ok()) {
      return Fail(absl::InvalidArgumentError(
          context + "/.dockerignore: " + std::string(m.status().message())));
    }
    ignore = std::move(*m);
  }
  absl::StatusOr<CasClient> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  std::string cache_dir = cli::DefaultHome() + "/statcache";
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  std::string cache_file =
      cache_dir + "/" + Digest::Of(context).hash().substr(0, 32);
  contexttree::StatCache cache = contexttree::StatCache::Load(cache_file);
  auto tree = contexttree::BuildContextTree(
      context, ignore ? &*ignore : nullptr, &cache);
  if (!tree.ok()) return Fail(tree.status());
  auto t1 = std::chrono::steady_clock::now();
  auto up = contexttree::UploadMissing(*tree, &*client);
  if (!up.ok()) return Fail(up.status());
  cache.DropUnused();
  // The cache only saves work: failing to write it is not an error.
  (void)cache.Save(cache_file);
  auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto a, auto b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  fprintf(stderr,
          "context %s: %lld files (%lld bytes), %lld directories, %lld "
          "symlinks%s; %lld files hashed, the rest from the stat cache "
          "(%.0f ms); %lld digests checked, %lld blobs (%lld bytes) uploaded "
          "(%.0f ms)\n",
          context.c_str(), static_cast<long long>(tree->file_count),
          static_cast<long long>(tree->total_bytes),
          static_cast<long long>(tree->dir_count),
          static_cast<long long>(tree->symlink_count),
          tree->skipped_special > 0
              ? (", " + std::to_string(tree->skipped_special) +
                 " sockets/FIFOs/devices skipped")
                    .c_str()
              : "",
          static_cast<long long>(tree->files_hashed), ms(t0, t1),
          static_cast<long long>(up->digests_checked),
          static_cast<long long>(up->blobs_uploaded),
          static_cast<long long>(up->bytes_uploaded), ms(t1, t2));
  std::cout << tree->root.ToString() << "\n";
  return 0;
}

int CasGet(const CasFlags& flags, const std::string& digest_arg,
           const std::string& output) {
  absl::StatusOr<Digest> digest = ParseDigestArg(digest_arg);
  if (!digest.ok()) return Fail(digest.status());
  absl::StatusOr<CasClient> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  // Write to a temporary file and rename it, so a failed download never
  // leaves a partial output behind.
  std::string tmp = output.empty() ? "" : output + ".stagefarm-partial";
  FILE* out = output.empty() ? stdout : std::fopen(tmp.c_str(), "wb");
  if (out == nullptr)
    return Fail(absl::UnavailableError("cannot write " + tmp));
  Sha256 hash;
  int64_t size = 0;
  absl::Status s = client->Read(*digest, [&](absl::string_view chunk) {
    hash.Update(chunk);
    size += static_cast<int64_t>(chunk.size());
    if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
      return absl::DataLossError("writing the output failed");
    }
    return absl::OkStatus();
  });
  if (s.ok() && Digest::FromRaw(hash.Final(), size) != *digest) {
    s = absl::DataLossError("downloaded data does not match " +
                            digest->ToString());
  }
  if (output.empty()) {
    std::fflush(stdout);
  } else {
    if (std::fclose(out) != 0 && s.ok())
      s = absl::DataLossError("closing " + tmp);
    if (s.ok() && std::rename(tmp.c_str(), output.c_str()) != 0) {
      s = absl::UnavailableError("cannot rename to " + output);
    }
    if (!s.ok()) std::remove(tmp.c_str());
  }
  return s.ok() ? 0 : Fail(s);
}

int CasHas(const CasFlags& flags, const std::vector<std::string>& args) {
  std::vector<Digest> digests;
  for (const std::string& a : args) {
    absl::StatusOr<Digest> d = ParseDigestArg(a);
    if (!d.ok()) return Fail(d.status());
    digests.push_back(*d);
  }
  absl::StatusOr<CasClient> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<std::vector<Digest>> missing = client->FindMissing(digests);
  if (!missing.ok()) return Fail(missing.status());
  for (const Digest& d : digests) {
    bool absent =
        std::find(missing->begin(), missing->end(), d) != missing->end();
    std::cout << d.ToString() << (absent ? "  missing\n" : "  present\n");
  }
  return missing->empty() ? 0 : 1;
}

int ParseCommand(const std::string& file, const std::string& format) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    absl::StatusOr<std::string> read = ReadFileToString(file);
    if (!read.ok()) return Fail(read.status());
    text = std::move(*read);
  }
  absl::StatusOr<dockerfile::ParsedDockerfile> parsed =
      dockerfile::Parse(text, file == "-" ? "<stdin>" : file);
  if (!parsed.ok()) {
    std::cerr << "stagefarm: " << parsed.status().message() << "\n";
    return 1;
  }
  if (format == "buildkit-result") {
    std::cout << dockerfile::DumpBuildkitResult(*parsed);
    return 0;
  }
  for (const dockerfile::Node& node : parsed->children) {
    std::cout << node.start_line << "-" << node.end_line << "\t"
              << node.original << "\n";
  }
  return 0;
}

struct PlanFlags {
  std::string file;
  std::string target;
  std::vector<std::string> build_args;
  std::string format = "text";
  std::string context = ".";
};

int PlanCommand(const PlanFlags& flags) {
  std::string path =
      flags.file.empty() ? flags.context + "/Dockerfile" : flags.file;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return Fail(text.status());
  dockerfile::PlanOptions options;
  options.target = flags.target;
  for (const std::string& kv : flags.build_args) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      // Docker takes the value from the environment for a bare name.
      const char* env = std::getenv(kv.c_str());
      if (env != nullptr) options.build_args[kv] = env;
      continue;
    }
    options.build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  absl::StatusOr<dockerfile::Plan> plan =
      dockerfile::PlanDockerfile(*text, options, path);
  if (!plan.ok()) {
    std::cerr << "stagefarm: " << plan.status().message() << "\n";
    return 1;
  }
  for (const std::string& w : plan->warnings)
    std::cerr << "warning: " << w << "\n";
  if (flags.format == "json") {
    std::cout << dockerfile::PlanAsJson(*plan);
  } else if (flags.format == "dot") {
    std::cout << dockerfile::PlanAsDot(*plan);
  } else {
    std::cout << dockerfile::PlanAsText(*plan);
  }
  return 0;
}

int CasStats(const CasFlags& flags) {
  absl::StatusOr<CasClient> client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::GetStatsResponse> stats = client->GetStats();
  if (!stats.ok()) return Fail(stats.status());
  std::cout << "stored_bytes " << stats->stored_bytes() << "\n"
            << "blob_count " << stats->blob_count() << "\n"
            << "max_bytes " << stats->max_bytes() << "\n"
            << "evicted_blobs " << stats->evicted_blobs() << "\n"
            << "evicted_bytes " << stats->evicted_bytes() << "\n"
            << "action_cache_entries " << stats->action_cache_entries() << "\n"
            << "uploads_in_progress " << stats->uploads_in_progress() << "\n";
  return 0;
}

// Asks a daemon's grpc.health.v1 service; exit 0 when it is SERVING.
int HealthCommand(const std::string& address, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(FarmChannel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) {
    std::cerr << "stagefarm: health of " << address << ": " << s.error_message()
              << "\n";
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                   resp.status())
            << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0
                                                                         : 1;
}

}  // namespace
}  // namespace stagefarm

int main(int argc, char** argv) {
  using namespace stagefarm;
  CLI::App app{"stagefarm: a distributed build farm for Dockerfiles"};
  app.require_subcommand(1);

  CasFlags cas_flags;
  CLI::App* cas =
      app.add_subcommand("cas", "talk to a content-addressable store");
  cas->add_option("--cas", cas_flags.address,
                  "CAS address HOST:PORT (or STAGEFARM_CAS)");
  cas->add_option("--instance", cas_flags.instance, "REAPI instance name");
  cas->require_subcommand(1);
  cas->fallthrough();

  std::vector<std::string> put_files;
  CLI::App* put =
      cas->add_subcommand("put", "upload files; prints HASH/SIZE of each");
  put->add_option("files", put_files, "files to upload")->required();

  std::string get_digest, get_output;
  CLI::App* get = cas->add_subcommand("get", "download a blob (verified)");
  get->add_option("digest", get_digest, "HASH/SIZE")->required();
  get->add_option("-o,--output", get_output, "file to write (default: stdout)");

  std::vector<std::string> has_digests;
  CLI::App* has =
      cas->add_subcommand("has", "check blobs; exit 1 if any is missing");
  has->add_option("digests", has_digests, "HASH/SIZE ...")->required();

  CLI::App* stats = cas->add_subcommand("stats", "print the CAS's counters");

  std::string context_dir;
  CLI::App* push_context = cas->add_subcommand(
      "push-context",
      "upload a build context (with its .dockerignore) as a REAPI tree; "
      "prints the root digest");
  push_context->add_option("dir", context_dir, "context directory")->required();

  std::string health_address, health_service;
  CLI::App* health = app.add_subcommand(
      "health", "ask a farm daemon whether it serves (grpc.health.v1)");
  health->add_option("address", health_address, "HOST:PORT")->required();
  health->add_option("--service", health_service,
                     "the service to ask about (default: the whole server)");
  CLI::App* version = app.add_subcommand("version", "print the version");

  std::string parse_file, parse_format = "buildkit-result";
  CLI::App* parse = app.add_subcommand(
      "parse", "parse a Dockerfile and print its instructions");
  parse->add_option("file", parse_file, "the Dockerfile (- for stdin)")
      ->required();
  parse
      ->add_option("--format", parse_format,
                   "buildkit-result (BuildKit's parser dump) or lines")
      ->check(CLI::IsMember({"buildkit-result", "lines"}));

  PlanFlags plan_flags;
  CLI::App* plan = app.add_subcommand(
      "plan",
      "print the stages of a build, what they depend on and the schedule");
  plan->add_option("-f,--file", plan_flags.file,
                   "the Dockerfile (default CONTEXT/Dockerfile)");
  plan->add_option("--target", plan_flags.target,
                   "the stage to build (default: the last)");
  plan->add_option("--build-arg", plan_flags.build_args,
                   "KEY=VALUE (repeatable)");
  plan->add_option("--format", plan_flags.format, "text, json or dot")
      ->check(CLI::IsMember({"text", "json", "dot"}));
  plan->add_option("context", plan_flags.context,
                   "the build context (default .)");

  cli::LocalOptions local;
  auto add_local_flags = [&local](CLI::App* sub) {
    sub->add_option("--runtime", local.runtime, "OCI runtime: runc or crun");
    sub->add_option("--cas", local.cas_address,
                    "keep blobs and the build cache in this CAS, HOST:PORT "
                    "(or STAGEFARM_CAS; default: the local store)");
    sub->add_option("--instance", local.cas_instance,
                    "the CAS instance name (with --cas)");
    sub->add_option("--insecure-registry", local.insecure_registries,
                    "HOST[:PORT] of a registry reached over plain HTTP or "
                    "unverified TLS (repeatable)");
    sub->add_option("--registry-mirror", local.registry_mirrors,
                    "where docker.io pulls go first: URL or HOST[:PORT] "
                    "(repeatable)");
    sub->add_option("--server", local.server,
                    "work against the farm whose scheduler is HOST:PORT (or "
                    "STAGEFARM_SERVER): builds run there, and without --cas "
                    "images live in the CAS it names");
  };

  cli::BuildFlags build_flags;
  CLI::App* build = app.add_subcommand(
      "build", "build a Dockerfile on this machine (embedded engine)");
  build->add_option("-f,--file", build_flags.file,
                    "the Dockerfile (default CONTEXT/Dockerfile)");
  build->add_option("-t,--tag", build_flags.tags, "NAME:TAG (repeatable)");
  build->add_option("--target", build_flags.target, "the stage to build");
  build->add_option("--build-arg", build_flags.build_args,
                    "KEY=VALUE (repeatable)");
  build->add_option("--label", build_flags.labels, "KEY=VALUE (repeatable)");
  build->add_flag("--no-cache", build_flags.no_cache,
                  "run every step, ignoring the step cache");
  build
      ->add_option("--log-max-bytes", build_flags.log_max_bytes,
                   "bytes of each step's output shown live (default 2 MiB; "
                   "a farm may allow less); the whole output is kept")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30));
  build->add_option("--secret", build_flags.secrets,
                    "id=ID,src=FILE (repeatable)");
  build
      ->add_option("--progress", build_flags.progress,
                   "auto, plain, tty or quiet")
      ->check(CLI::IsMember({"auto", "plain", "tty", "quiet"}));
  build->add_option("-o,--output", build_flags.outputs,
                    "type=docker|oci|local,dest=PATH or "
                    "type=registry,name=REF (repeatable)");
  build->add_flag("--push", build_flags.push,
                  "push every -t name to its registry");
  build->add_option("--source-date-epoch", build_flags.source_date_epoch,
                    "clamp file times and set created (or SOURCE_DATE_EPOCH)");
  build->add_option("--compression", build_flags.compression,
                    "layer compression: gzip, zstd or uncompressed");
  build->add_option("--compression-level", build_flags.compression_level,
                    "gzip 1-12 (default 6) or zstd 1-22 (default 3)");
  build->add_flag("--network-none", local.force_no_network,
                  "run every RUN without network");
  build->add_option("--memory", local.memory_bytes,
                    "memory limit of each RUN in bytes (0: none)");
  build->add_option("--pids-limit", local.pids_limit,
                    "process limit of each RUN (0: none)");
  build->add_option("context", build_flags.context, "the build context")
      ->required();
  build
      ->add_option("--reattach-seconds", build_flags.reattach_seconds,
                   "on the farm: how long to wait for a scheduler that went "
                   "away mid-build to come back")
      ->check(CLI::Range(0, 86400));
  add_local_flags(build);

  CLI::App* image = app.add_subcommand("image", "manage local images");
  image->require_subcommand(1);
  // Its subcommands (created below) take the parent's flags too.
  add_local_flags(image);
  image->fallthrough();
  std::string import_path;
  std::vector<std::string> import_tags;
  CLI::App* import = image->add_subcommand(
      "import",
      "import a docker-archive, OCI archive or layout, or a root file system");
  import->add_option("path", import_path, "FILE-OR-DIR")->required();
  import->add_option("-t,--tag", import_tags, "NAME:TAG (repeatable)");
  CLI::App* ls = image->add_subcommand("ls", "list images");
  std::string inspect_name;
  CLI::App* inspect = image->add_subcommand("inspect", "print an image");
  inspect->add_option("name", inspect_name, "NAME:TAG")->required();
  std::vector<std::string> rm_names;
  CLI::App* rm = image->add_subcommand("rm", "remove image names");
  rm->add_option("names", rm_names, "NAME:TAG ...")->required();
  std::string export_name, export_format = "oci", export_output;
  CLI::App* exp = image->add_subcommand("export", "write an image archive");
  exp->add_option("name", export_name, "NAME:TAG")->required();
  exp->add_option("--format", export_format, "oci or docker")
      ->check(CLI::IsMember({"oci", "docker"}));
  exp->add_option("-o,--output", export_output, "FILE")->required();

  std::string run_image;
  std::string pull_ref, push_name, push_dest;
  CLI::App* pull =
      app.add_subcommand("pull", "fetch an image from a registry and tag it");
  pull->add_option("ref", pull_ref, "[REGISTRY/]REPO[:TAG|@DIGEST]")
      ->required();
  add_local_flags(pull);
  CLI::App* push = app.add_subcommand("push", "send an image to a registry");
  push->add_option("name", push_name, "the local image")->required();
  push->add_option("dest", push_dest,
                   "REGISTRY/REPO:TAG to push to (default: NAME)");
  add_local_flags(push);
  CLI::App* run = app.add_subcommand("run", "run an image's command");
  run->add_option("image", run_image, "NAME:TAG")->required();
  // Everything after IMAGE is the command, flags included.
  run->prefix_command();
  add_local_flags(run);

  std::string farm_server, farm_build;
  auto server_flag = [&farm_server](CLI::App* sub) {
    sub->add_option("--server", farm_server,
                    "the farm's scheduler HOST:PORT (or STAGEFARM_SERVER)");
  };
  CLI::App* builds = app.add_subcommand("builds", "builds on a farm");
  builds->require_subcommand(1);
  server_flag(builds);
  builds->fallthrough();
  CLI::App* builds_ls =
      builds->add_subcommand("ls", "running and recent builds, newest first");
  CLI::App* logs = app.add_subcommand(
      "logs",
      "a farm build's progress, followed to its end; one step's output; a "
      "step's whole output kept after its live log was clipped");
  logs->add_option("build", farm_build, "BUILD id");
  int logs_step = 0;
  std::string logs_stage, logs_blob;
  bool logs_full = false;
  logs->add_option("--step", logs_step,
                   "only this step's output (its number within its stage)")
      ->check(CLI::Range(1, 1 << 20));
  logs->add_option("--stage", logs_stage,
                   "the stage of --step, as progress names it (needed when "
                   "several stages have that step)");
  logs->add_flag("--full", logs_full,
                 "with --step: all of the step's output, also what the live "
                 "log clipped");
  logs->add_option("--blob", logs_blob,
                   "print a kept output, HASH/SIZE as a clipped step's note "
                   "names it (from the local store, or --cas / --server)");
  logs->add_option("--cas", local.cas_address, "the CAS holding --blob");
  logs->add_option("--instance", local.cas_instance,
                   "the CAS instance of --blob");
  server_flag(logs);
  CLI::App* cancel = app.add_subcommand("cancel", "cancel a farm build");
  cancel->add_option("build", farm_build, "BUILD id")->required();
  server_flag(cancel);

  CLI::App* cluster = app.add_subcommand(
      "cluster", "a farm on this machine: CAS, scheduler and workers");
  cluster->require_subcommand(1);
  std::string cluster_state;
  int cluster_workers = 2;
  cluster->add_option("--state", cluster_state,
                      "directory for the processes' state and logs (default "
                      "$STAGEFARM_HOME/cluster)");
  cluster->fallthrough();
  CLI::App* cluster_up =
      cluster->add_subcommand("up", "start a CAS, a scheduler and workers");
  cluster_up->add_option("--workers", cluster_workers, "how many workers")
      ->check(CLI::Range(1, 64));
  CLI::App* cluster_down =
      cluster->add_subcommand("down", "stop what `cluster up` started");

  CLI11_PARSE(app, argc, argv);
  // Farm connections use TLS when STAGEFARM_TLS_* name the files.
  if (absl::Status t = ConfigureTls(TlsFiles{}, /*server=*/false); !t.ok()) {
    std::cerr << "error: " << t.message() << "\n";
    return 2;
  }
  if (local.cas_address.empty()) {
    if (const char* env = std::getenv("STAGEFARM_CAS"); env != nullptr) {
      local.cas_address = env;
    }
  }
  if (local.server.empty()) {
    if (const char* env = std::getenv("STAGEFARM_SERVER"); env != nullptr) {
      local.server = env;
    }
  }
  build_flags.server = local.server;
  if (!local.server.empty() && local.cas_address.empty() &&
      (build->parsed() || image->parsed() || run->parsed() || pull->parsed() ||
       push->parsed())) {
    // Only the scheduler given: its CAS holds the farm's images.
    auto cas = cli::FarmCas(local.server);
    if (!cas.ok()) {
      std::cerr << "error: " << cas.status().message() << "\n";
      return 1;
    }
    local.cas_address = *cas;
  }

  if (version->parsed()) {
    std::cout << "stagefarm 0.1.0\n";
    return 0;
  }
  if (health->parsed()) return HealthCommand(health_address, health_service);
  if (parse->parsed()) return ParseCommand(parse_file, parse_format);
  if (plan->parsed()) return PlanCommand(plan_flags);
  if (put->parsed()) return CasPut(cas_flags, put_files);
  if (get->parsed()) return CasGet(cas_flags, get_digest, get_output);
  if (has->parsed()) return CasHas(cas_flags, has_digests);
  if (stats->parsed()) return CasStats(cas_flags);
  if (push_context->parsed()) return CasPushContext(cas_flags, context_dir);
  if (build->parsed()) return cli::BuildCommand(local, build_flags);
  if (import->parsed()) {
    return cli::ImageImportCommand(local, import_path, import_tags);
  }
  if (ls->parsed()) return cli::ImageListCommand(local);
  if (inspect->parsed()) return cli::ImageInspectCommand(local, inspect_name);
  if (rm->parsed()) return cli::ImageRemoveCommand(local, rm_names);
  if (exp->parsed()) {
    return cli::ImageExportCommand(local, export_name, export_format,
                                   export_output);
  }
  if (pull->parsed()) return cli::PullCommand(local, pull_ref);
  if (push->parsed()) return cli::PushCommand(local, push_name, push_dest);
  if (run->parsed()) {
    return cli::RunCommand(local, run_image, run->remaining());
  }
  if (logs->parsed() && !logs_blob.empty()) {
    absl::StatusOr<Digest> d = ParseDigestArg(logs_blob);
    if (!d.ok()) return Fail(d.status());
    if (!farm_server.empty()) local.server = farm_server;
    if (local.cas_address.empty() && !local.server.empty()) {
      auto cas = cli::FarmCas(local.server);
      if (!cas.ok()) return Fail(cas.status());
      local.cas_address = *cas;
    }
    return cli::LogBlobCommand(local, *d);
  }
  if (logs->parsed() && farm_build.empty()) {
    return Fail(absl::InvalidArgumentError(
        "logs: pass a BUILD id (or --blob HASH/SIZE)"));
  }
  if (logs->parsed() && logs_full && logs_step == 0) {
    return Fail(absl::InvalidArgumentError("logs: --full needs --step N"));
  }
  if (builds_ls->parsed() || logs->parsed() || cancel->parsed()) {
    if (farm_server.empty()) {
      if (const char* env = std::getenv("STAGEFARM_SERVER")) farm_server = env;
    }
    if (farm_server.empty()) {
      return Fail(absl::InvalidArgumentError(
          "no farm: pass --server HOST:PORT or set STAGEFARM_SERVER"));
    }
    if (builds_ls->parsed()) {
      auto text = cli::ListBuildsText(farm_server);
      if (!text.ok()) return Fail(text.status());
      std::cout << *text;
      return 0;
    }
    if (cancel->parsed()) {
      absl::Status s = cli::CancelBuild(farm_server, farm_build);
      if (!s.ok()) return Fail(s);
      std::cerr << "cancelled " << farm_build << "\n";
      return 0;
    }
    if (logs_step > 0) {
      return StepLogCommand(local, farm_server, farm_build, logs_stage,
                            logs_step, logs_full);
    }
    auto progress = cli::MakeProgress("plain", stderr);
    absl::Status s = cli::WatchBuild(
        farm_server, farm_build,
        [&](const engine::BuildEvent& ev) { progress->OnEvent(ev); });
    progress->Finish();
    if (!s.ok()) return Fail(s);
    return 0;
  }
  if (cluster_up->parsed() || cluster_down->parsed()) {
    std::string state =
        cluster_state.empty() ? cli::DefaultHome() + "/cluster" : cluster_state;
    if (!cluster_up->parsed()) return cli::ClusterDown(state);
    return cli::ClusterUp(state, cluster_workers);
  }
  return kUsageError;
}
