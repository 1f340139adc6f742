#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/attestations.h"
#include "cli/commands.h"
#include "cli/local_commands.h"
#include "common/byte_size_flag.h"
#include "registry/reference.h"

namespace stagefarm::cli {
namespace {

// An image name the user gives (to build, tag, pull, push or run) must
// follow Docker's reference grammar: refused before any work starts, with
// Docker's message naming the value (CLI11 names the flag).
CLI::Validator ImageReference() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        absl::StatusOr<registry::Reference> r = registry::ParseReference(value);
        return r.ok() ? std::string() : std::string(r.status().message());
      },
      "", "image reference");
}

// Docker's bound: a memory limit under 6 MiB cannot start a container.
CLI::Validator MemoryLimit() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        int64_t bytes = 0;
        if (!absl::SimpleAtoi(value, &bytes) || bytes < 0) {
          return "must be 0 (no limit) or a size";
        }
        if (bytes != 0 && bytes < (int64_t{6} << 20)) {
          return absl::StrCat("minimum memory limit allowed is 6MB (got ",
                              value, " bytes)");
        }
        return "";
      },
      "", "memory limit");
}

}  // namespace

void AddStoreFlags(CLI::App* sub, LocalOptions* local) {
  sub->add_option("--cas", local->cas_address,
                  "keep blobs and the build cache in this CAS, HOST:PORT "
                  "(or STAGEFARM_CAS; default: the local store)");
  sub->add_option("--instance", local->cas_instance,
                  "the CAS instance name (with --cas)");
  sub->add_option("--server", local->server,
                  "work against the farm whose scheduler is HOST:PORT (or "
                  "STAGEFARM_SERVER): builds run there, and without --cas "
                  "images live in the CAS it names");
}

void AddImageCommands(CLI::App* app, LocalOptions* local, Commands* out) {
  struct Flags {
    BuildFlags build_flags;
    std::string import_path;
    std::vector<std::string> import_tags;
    std::string index_tag;
    std::string attest_name, attest_type, attest_key, attest_policy;
    std::vector<std::string> index_sources;
    std::string inspect_name;
    std::vector<std::string> rm_names;
    std::string export_name, export_format = "oci", export_output;
    std::string run_image;
    std::string pull_ref, push_name, push_dest;
  };
  auto f = std::make_shared<Flags>();
  auto add_local_flags = [local](CLI::App* sub) {
    sub->add_option("--runtime", local->runtime, "OCI runtime: runc or crun");
    AddStoreFlags(sub, local);
    // One value an occurrence, so that the positional arguments after the
    // flag stay positional.
    sub->add_option("--insecure-registry", local->insecure_registries,
                    "HOST[:PORT] of a registry reached over plain HTTP or "
                    "unverified TLS (repeatable)")
        ->allow_extra_args(false);
    sub->add_option("--registry-mirror", local->registry_mirrors,
                    "where docker.io pulls go first: URL or HOST[:PORT] "
                    "(repeatable)")
        ->allow_extra_args(false);
  };

  CLI::App* build = app->add_subcommand(
      "build", "build a Dockerfile on this machine (embedded engine)");
  build->add_option("-f,--file", f->build_flags.file,
                    "the Dockerfile (default CONTEXT/Dockerfile)");
  build->add_option("-t,--tag", f->build_flags.tags, "NAME:TAG (repeatable)")
      ->check(ImageReference());
  build->add_option("--target", f->build_flags.target, "the stage to build");
  build->add_option("--provenance", f->build_flags.provenance,
                    "record SLSA provenance: min or max (mode=min|max, "
                    "true, false)");
  build->add_flag("--sbom", f->build_flags.sbom,
                  "record an SPDX SBOM of the image's packages");
  build
      ->add_option("--attest", f->build_flags.attest,
                   "type=provenance[,mode=min|max] or type=sbom (repeatable)")
      ->allow_extra_args(false);
  build->add_option("--trace", f->build_flags.trace,
                    "write the build's timeline to FILE as Chrome trace-event "
                    "JSON (Perfetto, chrome://tracing); several platforms: "
                    "one file each, FILE with the platform before .json");
  build->add_flag("--verify-reproducible", f->build_flags.verify_reproducible,
                  "build again without cache (on a farm, each stage on "
                  "another worker) and fail unless the image is the same, "
                  "naming the first layer and file that differ; needs "
                  "--source-date-epoch; the provenance records it");
  build->add_option("--platform", f->build_flags.platform,
                    "OS/ARCH[/VARIANT],... to build for (default: this "
                    "machine's); several give an image index");
  build->add_option("--build-arg", f->build_flags.build_args,
                    "KEY=VALUE (repeatable)");
  build->add_option("--label", f->build_flags.labels, "KEY=VALUE (repeatable)");
  build->add_flag("--no-cache", f->build_flags.no_cache,
                  "run every step, ignoring the step cache");
  build
      ->add_option("--log-max-bytes", f->build_flags.log_max_bytes,
                   "bytes of each step's output shown live (default 2m; "
                   "a farm may allow less); the whole output is kept")
      ->transform(ByteSize())
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30));
  build
      ->add_option("--ssh", f->build_flags.ssh,
                   "forward an SSH agent to RUN --mount=type=ssh: "
                   "default (SSH_AUTH_SOCK) or ID=SOCKET (repeatable; this "
                   "machine's builds only)")
      ->allow_extra_args(false);
  build->add_option("--secret", f->build_flags.secrets,
                    "id=ID,src=FILE (repeatable)");
  build
      ->add_option("--progress", f->build_flags.progress,
                   "auto, plain, tty or quiet")
      ->check(CLI::IsMember({"auto", "plain", "tty", "quiet"}));
  build->add_option("-o,--output", f->build_flags.outputs,
                    "type=docker|oci|local,dest=PATH or "
                    "type=registry,name=REF (repeatable)");
  build->add_flag("--push", f->build_flags.push,
                  "push every -t name to its registry");
  build->add_option("--source-date-epoch", f->build_flags.source_date_epoch,
                    "clamp file times and set created (or SOURCE_DATE_EPOCH)");
  build->add_option("--compression", f->build_flags.compression,
                    "layer compression: gzip, zstd or uncompressed");
  build->add_option("--compression-level", f->build_flags.compression_level,
                    "gzip 1-12 (default 6) or zstd 1-22 (default 3)");
  build->add_flag("--network-none", local->force_no_network,
                  "run every RUN without network");
  build
      ->add_option("--allow", f->build_flags.allow,
                   "give the build an entitlement: network.host (RUN "
                   "--network=host) or security.insecure (repeatable)")
      ->allow_extra_args(false);
  AddByteSizeOption(build, "-m,--memory", &local->memory_bytes,
                    "memory limit of each RUN: bytes, or with a unit b, k, "
                    "m, g (256m, 1g; 0: none)")
      ->check(MemoryLimit());
  AddByteSizeOption(build, "--shm-size", &local->shm_bytes,
                    "size of each RUN's /dev/shm: bytes, or with a unit b, "
                    "k, m, g (default 64m)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  build->add_option("--pids-limit", local->pids_limit,
                    "process limit of each RUN (0: none)");
  build->add_option("context", f->build_flags.context, "the build context")
      ->required();
  build
      ->add_option("--reattach-seconds", f->build_flags.reattach_seconds,
                   "on the farm: how long to wait for a scheduler that went "
                   "away mid-build to come back")
      ->check(CLI::Range(0, 86400));
  add_local_flags(build);

  CLI::App* image = app->add_subcommand("image", "manage local images");
  image->require_subcommand(1);
  // Its subcommands (created below) take the parent's flags too.
  add_local_flags(image);
  image->fallthrough();
  CLI::App* import = image->add_subcommand(
      "import",
      "import a docker-archive, OCI archive or layout, or a root file system");
  import->add_option("path", f->import_path, "FILE-OR-DIR")->required();
  import->add_option("-t,--tag", f->import_tags, "NAME:TAG (repeatable)")
      ->check(ImageReference());
  import->add_option("--platform", local->platform,
                     "OS/ARCH[/VARIANT] of a root file system imported "
                     "(default: this machine's)");
  CLI::App* index = image->add_subcommand(
      "index", "tag an image index over images of different platforms");
  index->add_option("-t,--tag", f->index_tag, "NAME:TAG")
      ->required()
      ->check(ImageReference());
  index->add_option("images", f->index_sources, "IMAGE ...")->required();
  CLI::App* ls = image->add_subcommand("ls", "list images");
  CLI::App* inspect = image->add_subcommand("inspect", "print an image");
  inspect->add_option("name", f->inspect_name, "NAME:TAG")->required();
  inspect->add_option("--platform", local->platform,
                      "the platform whose image to show from an index");
  CLI::App* rm = image->add_subcommand("rm", "remove image names");
  rm->add_option("names", f->rm_names, "NAME:TAG ...")->required();
  CLI::App* exp = image->add_subcommand("export", "write an image archive");
  exp->add_option("name", f->export_name, "NAME:TAG")->required();
  exp->add_option("--format", f->export_format, "oci or docker")
      ->check(CLI::IsMember({"oci", "docker"}));
  exp->add_option("-o,--output", f->export_output, "FILE")->required();
  exp->add_option("--platform", local->platform,
                  "export only this platform's image of an index");

  CLI::App* attest = app->add_subcommand(
      "attest", "the provenance and SBOMs recorded with an image");
  attest->require_subcommand(1);
  add_local_flags(attest);
  attest->fallthrough();
  CLI::App* attest_show =
      attest->add_subcommand("show", "print an image's attestations");
  attest_show->add_option("name", f->attest_name, "NAME:TAG")->required();
  attest_show
      ->add_option("--type", f->attest_type,
                   "provenance or sbom (default: all)")
      ->check(CLI::IsMember({"provenance", "sbom"}));
  attest_show->add_option("--platform", local->platform,
                          "only the attestations of this platform's image");
  CLI::App* attest_verify = attest->add_subcommand(
      "verify",
      "check an image's provenance: signed by the farm's key, about this "
      "image, unchanged, and meeting a policy");
  attest_verify->add_option("name", f->attest_name, "NAME:TAG")->required();
  attest_verify
      ->add_option("--key", f->attest_key,
                   "the farm scheduler's public key (PEM; the public half of "
                   "its --signing-key)")
      ->required();
  attest_verify->add_option(
      "--policy", f->attest_policy,
      "JSON: builder, context, dockerfile, source, allow_host_network, "
      "allow_insecure, reproducible (docs/operations.md)");
  attest_verify->add_option("--platform", local->platform,
                            "only this platform's image");

  CLI::App* pull =
      app->add_subcommand("pull", "fetch an image from a registry and tag it");
  pull->add_option("ref", f->pull_ref, "[REGISTRY/]REPO[:TAG|@DIGEST]")
      ->required()
      ->check(ImageReference());
  pull->add_option("--platform", local->platform,
                   "OS/ARCH[/VARIANT] to pull from an index (default: this "
                   "machine's)");
  add_local_flags(pull);
  CLI::App* push = app->add_subcommand("push", "send an image to a registry");
  push->add_option("name", f->push_name, "the local image")
      ->required()
      ->check(ImageReference());
  push->add_option("dest", f->push_dest,
                   "REGISTRY/REPO:TAG to push to (default: NAME)")
      ->check(ImageReference());
  add_local_flags(push);
  CLI::App* run = app->add_subcommand("run", "run an image's command");
  run->add_option("image", f->run_image, "NAME:TAG")
      ->required()
      ->check(ImageReference());
  run->add_option("--platform", local->platform,
                  "OS/ARCH[/VARIANT] to run (emulated when foreign)");
  run->add_option("--network", local->run_network,
                  "default (its own, with NAT), none or host")
      ->check(CLI::IsMember({"default", "none", "host"}));
  // Everything after IMAGE is the command, flags included.
  run->prefix_command();
  add_local_flags(run);

  // These work on images, so they want the store (--cas, or the CAS a
  // farm names).
  out->push_back({build,
                  [f, local] {
                    f->build_flags.server = local->server;
                    return BuildCommand(*local, f->build_flags);
                  },
                  /*uses_store=*/true});
  out->push_back({import,
                  [f, local] {
                    return ImageImportCommand(*local, f->import_path,
                                              f->import_tags);
                  },
                  true});
  out->push_back({index,
                  [f, local] {
                    return ImageIndexCommand(*local, f->index_tag,
                                             f->index_sources);
                  },
                  true});
  out->push_back({ls, [local] { return ImageListCommand(*local); }, true});
  out->push_back({attest_verify,
                  [f, local] {
                    return AttestVerifyCommand(*local, f->attest_name,
                                               f->attest_key, f->attest_policy);
                  },
                  true});
  out->push_back({attest_show,
                  [f, local] {
                    return AttestShowCommand(*local, f->attest_name,
                                             f->attest_type);
                  },
                  true});
  out->push_back(
      {inspect,
       [f, local] { return ImageInspectCommand(*local, f->inspect_name); },
       true});
  out->push_back(
      {rm, [f, local] { return ImageRemoveCommand(*local, f->rm_names); },
       true});
  out->push_back({exp,
                  [f, local] {
                    return ImageExportCommand(*local, f->export_name,
                                              f->export_format,
                                              f->export_output);
                  },
                  true});
  out->push_back(
      {pull, [f, local] { return PullCommand(*local, f->pull_ref); }, true});
  out->push_back(
      {push,
       [f, local] { return PushCommand(*local, f->push_name, f->push_dest); },
       true});
  out->push_back({run,
                  [f, local, run] {
                    return RunCommand(*local, f->run_image, run->remaining());
                  },
                  true});
}

}  // namespace stagefarm::cli
