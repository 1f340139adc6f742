#include "cli/local_commands.h"

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
#include "cli/disk_usage.h"
#include "cli/exit_status.h"
#include "cli/farm_client.h"
#include "cli/interrupt.h"
#include "cli/progress.h"
#include "cli/vcs.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "engine/user_db.h"
#include "frontend/dockerfile/dockerignore.h"
#include "image/image_archive.h"
#include "image/image_diff.h"
#include "platform/emulation.h"
#include "platform/platform.h"
#include "registry/client.h"
#include "registry/reference.h"

namespace stagefarm::cli {
namespace {

// --platform of pull, run and image inspect|export: this machine's when
// not given.
absl::StatusOr<platform::Platform> ChosenPlatform(const LocalOptions& local) {
  if (local.platform.empty()) return platform::Host();
  auto p = platform::Parse(local.platform);
  if (!p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--platform: ", p.status().message()));
  }
  return p;
}

// "linux/amd64,linux/arm64" for a tagged digest.
std::string PlatformList(image::ImageStore* images, const Digest& digest) {
  auto platforms = images->Platforms(digest);
  if (!platforms.ok()) return "?";
  std::vector<std::string> out;
  for (const image::IndexEntry& e : *platforms) {
    out.push_back(e.platform.String());
  }
  return absl::StrJoin(out, ",");
}

}  // namespace

int ImageIndexCommand(const LocalOptions& local, const std::string& tag,
                      const std::vector<std::string>& sources) {
  auto n = image::NormalizeReference(tag);
  if (!n.ok()) return Fail(n.status());
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  // Every platform of every source, in order; one image a platform.
  std::vector<image::IndexEntry> entries;
  for (const std::string& src : sources) {
    auto tagged = (*l)->images()->Tagged(src);
    if (!tagged.ok()) return Fail(tagged.status());
    auto platforms = (*l)->images()->Platforms(*tagged);
    if (!platforms.ok()) return Fail(platforms.status());
    for (const image::IndexEntry& e : *platforms) {
      for (const image::IndexEntry& had : entries) {
        if (had.platform == e.platform) {
          return Fail(absl::InvalidArgumentError(
              absl::StrCat(src, ": a second image for ", e.platform.String(),
                           " (one image a platform)")));
        }
      }
      entries.push_back(e);
    }
  }
  auto index = (*l)->images()->PutIndex(entries);
  if (!index.ok()) return Fail(index.status());
  if (absl::Status s = (*l)->images()->Tag(*n, index->digest); !s.ok()) {
    return Fail(s);
  }
  std::cout << image::OciDigest(index->digest) << "\n";
  return 0;
}

int ImageImportCommand(const LocalOptions& local, const std::string& path,
                       const std::vector<std::string>& tags) {
  for (const std::string& t : tags) {
    auto n = image::NormalizeReference(t);
    if (!n.ok()) return Fail(n.status());
  }
  auto want = ChosenPlatform(local);
  if (!want.ok()) return Fail(want.status());
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto scratch = (*l)->snapshots()->TempDir("import-");
  if (!scratch.ok()) return Fail(scratch.status());
  auto desc = image::ImportImage((*l)->images(), path, *scratch, *want);
  (void)RemoveAll(*scratch);
  if (!desc.ok()) return Fail(desc.status());
  for (const std::string& t : tags) {
    absl::Status s = (*l)->images()->Tag(t, desc->digest);
    if (!s.ok()) return Fail(s);
  }
  std::cout << image::OciDigest(desc->digest) << "\n";
  return 0;
}

int LogBlobCommand(const LocalOptions& local, const Digest& digest) {
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto reader = (*l)->store()->OpenRead(Local::kNamespace, digest, 0, 0);
  if (!reader.ok()) {
    return Fail(absl::Status(
        reader.status().code(),
        absl::StrCat("log ", digest.ToString(), ": ", reader.status().message(),
                     absl::IsNotFound(reader.status())
                         ? " (a farm build's log is in the farm's CAS: pass "
                           "--server or --cas with the build's --instance)"
                         : "")));
  }
  std::string chunk;
  while (true) {
    chunk.clear();
    auto n = (*reader)->Read(1 << 20, &chunk);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;
    if (std::fwrite(chunk.data(), 1, chunk.size(), stdout) != chunk.size()) {
      return Fail(absl::DataLossError("writing the log to stdout failed"));
    }
  }
  std::fflush(stdout);
  return 0;
}

int PullCommand(const LocalOptions& local, const std::string& ref) {
  auto parsed = registry::ParseReference(ref);
  if (!parsed.ok()) return Fail(parsed.status());
  auto want = ChosenPlatform(local);
  if (!want.ok()) return Fail(want.status());
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto image = (*l)->registry()->Pull(
      (*l)->images(), ref,
      [](const std::string& line) { std::cerr << line << "\n"; }, *want);
  if (!image.ok()) return Fail(image.status());
  std::cerr << "tagged " << image->name << "\n";
  std::cout << image::OciDigest(image->manifest.digest) << "\n";
  return 0;
}

int PushCommand(const LocalOptions& local, const std::string& name,
                const std::string& dest) {
  auto normalized = image::NormalizeReference(name);
  if (!normalized.ok()) return Fail(normalized.status());
  std::string target = dest.empty() ? name : dest;
  auto parsed = registry::ParseReference(target);
  if (!parsed.ok()) return Fail(parsed.status());
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto records = (*l)->images()->List();
  if (!records.ok()) return Fail(records.status());
  for (const image::ImageRecord& r : *records) {
    if (r.name != *normalized) continue;
    auto pushed = (*l)->registry()->Push(
        (*l)->images(), r.manifest, target,
        [](const std::string& line) { std::cerr << line << "\n"; });
    if (!pushed.ok()) return Fail(pushed.status());
    std::cout << pushed->digest << "\n";
    return 0;
  }
  return Fail(absl::NotFoundError(
      absl::StrCat("no image named \"", *normalized, "\" to push")));
}

int ImageListCommand(const LocalOptions& local) {
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto records = (*l)->images()->List();
  if (!records.ok()) return Fail(records.status());
  std::cout << absl::StrFormat("%-40s %-19s %-10s %-20s %s\n", "NAME",
                               "MANIFEST", "SIZE", "CREATED", "PLATFORMS");
  for (const auto& r : *records) {
    std::cout << absl::StrFormat("%-40s %-19s %-10s %-20s %s\n", r.name,
                                 "sha256:" + r.manifest.hash().substr(0, 12),
                                 HumanBytes(r.size, /*compact=*/true),
                                 r.created,
                                 PlatformList((*l)->images(), r.manifest));
  }
  return 0;
}

int ImageInspectCommand(const LocalOptions& local, const std::string& name) {
  auto want = ChosenPlatform(local);
  if (!want.ok()) return Fail(want.status());
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto tagged = (*l)->images()->Tagged(name);
  if (!tagged.ok()) return Fail(tagged.status());
  auto platforms = (*l)->images()->Platforms(*tagged);
  if (!platforms.ok()) return Fail(platforms.status());
  // One platform's image: --platform's, this machine's, or the only one.
  platform::Platform chosen = *want;
  if (local.platform.empty() && platforms->size() == 1) {
    chosen = (*platforms)[0].platform;
  }
  auto image = (*l)->images()->LoadFor(*tagged, chosen);
  if (!image.ok()) return Fail(image.status());
  nlohmann::json listed = nlohmann::json::array();
  for (const image::IndexEntry& e : *platforms) {
    listed.push_back({{"platform", e.platform.String()},
                      {"manifest", image::OciDigest(e.manifest.digest)}});
  }
  nlohmann::json out{{"name", *image::NormalizeReference(name)},
                     {"digest", image::OciDigest(*tagged)},
                     {"platforms", listed},
                     {"platform", chosen.String()},
                     {"manifest", image::DescriptorJson(image->manifest)},
                     {"config", image->image.config}};
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& d : image->image.layers) {
    layers.push_back(image::DescriptorJson(d));
  }
  out["layers"] = layers;
  std::cout << stagefarm::json::Dump(out, 2) << "\n";
  return 0;
}

int ImageRemoveCommand(const LocalOptions& local,
                       const std::vector<std::string>& names) {
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  for (const std::string& n : names) {
    absl::Status s = (*l)->images()->Remove(n);
    if (!s.ok()) return Fail(s);
    std::cout << "untagged " << *image::NormalizeReference(n) << "\n";
  }
  return 0;
}

int ImageExportCommand(const LocalOptions& local, const std::string& name,
                       const std::string& format, const std::string& output) {
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  // The whole index, or with --platform that platform's image.
  auto tagged = (*l)->images()->Tagged(name);
  if (!tagged.ok()) return Fail(tagged.status());
  Digest what = *tagged;
  auto platforms = (*l)->images()->Platforms(*tagged);
  if (!platforms.ok()) return Fail(platforms.status());
  bool is_index =
      platforms->size() != 1 || (*platforms)[0].manifest.digest != *tagged;
  // A docker archive holds one platform: --platform's, else this
  // machine's.
  if (!local.platform.empty() || (is_index && format == "docker")) {
    auto want = ChosenPlatform(local);
    if (!want.ok()) return Fail(want.status());
    auto image = (*l)->images()->LoadFor(*tagged, *want);
    if (!image.ok()) return Fail(image.status());
    what = image->manifest.digest;
    if (local.platform.empty()) {
      std::cerr << "exporting the " << want->String()
                << " image of the index (a docker archive holds one "
                   "platform; --platform chooses)\n";
    }
  }
  absl::Status s = image::ExportImage(
      (*l)->images(), what, {*image::NormalizeReference(name)},
      format == "docker" ? image::ArchiveFormat::kDocker
                         : image::ArchiveFormat::kOci,
      output);
  return s.ok() ? 0 : Fail(s);
}

int RunCommand(const LocalOptions& local, const std::string& name,
               const std::vector<std::string>& args) {
  auto want = ChosenPlatform(local);
  if (!want.ok()) return Fail(want.status());
  if (absl::Status s = platform::CheckRunnable(*want); !s.ok()) return Fail(s);
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto image = (*l)->images()->Resolve(name, *want);
  if (!image.ok()) return Fail(image.status());
  const nlohmann::json& cfg = image->image.config["config"];
  auto strings = [](const nlohmann::json& j) {
    std::vector<std::string> out;
    if (j.is_array()) {
      for (const auto& v : j) {
        if (v.is_string()) out.push_back(v.get<std::string>());
      }
    }
    return out;
  };
  std::vector<std::string> argv =
      strings(cfg.value("Entrypoint", nlohmann::json()));
  std::vector<std::string> cmd =
      args.empty() ? strings(cfg.value("Cmd", nlohmann::json())) : args;
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  if (argv.empty()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "image ", image->name, " has no Entrypoint or Cmd: give a command")));
  }
  auto lowers =
      (*l)->snapshots()->Prepare(image->image.layers, image->image.diff_ids);
  if (!lowers.ok()) return Fail(lowers.status());
  auto dir = (*l)->snapshots()->TempDir("run-");
  if (!dir.ok()) return Fail(dir.status());
  std::string upper = *dir + "/upper", work = *dir + "/work",
              root = *dir + "/rootfs";
  for (const std::string& d : {upper, work, root}) mkdir(d.c_str(), 0755);
  int code = kFailure;
  {
    auto mount = snapshot::OverlayMount::Mount(*lowers, upper, work, root,
                                               (*l)->snapshots()->empty_dir());
    if (!mount.ok()) return Fail(mount.status());
    executor::ExecSpec spec;
    spec.rootfs = root;
    spec.args = argv;
    spec.env = strings(cfg.value("Env", nlohmann::json()));
    std::string wd = cfg.value("WorkingDir", "");
    spec.cwd = wd.empty() ? "/" : wd;
    auto ids = engine::ResolveUser(root, cfg.value("User", ""), true);
    if (!ids.ok()) {
      (void)(*mount)->Unmount();
      (void)RemoveAll(*dir);
      return Fail(ids.status());
    }
    spec.uid = ids->uid;
    spec.gid = ids->gid;
    spec.additional_gids = ids->additional;
    spec.hostname = "stagefarm";
    spec.network = local.run_network == "host"   ? executor::Network::kHost
                   : local.run_network == "none" ? executor::Network::kNone
                                                 : executor::Network::kSandbox;
    spec.on_output = [](absl::string_view chunk) {
      fwrite(chunk.data(), 1, chunk.size(), stdout);
      fflush(stdout);
    };
    InstallSignalHandlers();
    spec.cancel = &Cancelled();
    auto result = (*l)->executor()->Run(spec);
    if (!result.ok()) {
      (void)(*mount)->Unmount();
      (void)RemoveAll(*dir);
      return Fail(result.status());
    }
    code = result->exit_code;
  }
  (void)RemoveAll(*dir);
  return code;
}

}  // namespace stagefarm::cli
