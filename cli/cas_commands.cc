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

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "common/cas_client.h"
#include "common/status_macros.h"
#include "contexttree/context_upload.h"
#include "frontend/dockerfile/dockerignore.h"

namespace stagefarm::cli {
namespace {

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

}  // namespace

void AddCasCommands(CLI::App* app, Commands* out) {
  struct Flags {
    CasFlags cas_flags;
    std::vector<std::string> put_files;
    std::string get_digest, get_output;
    std::vector<std::string> has_digests;
    std::string context_dir;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cas =
      app->add_subcommand("cas", "talk to a content-addressable store");
  cas->add_option("--cas", f->cas_flags.address,
                  "CAS address HOST:PORT (or STAGEFARM_CAS)");
  cas->add_option("--instance", f->cas_flags.instance, "REAPI instance name");
  cas->require_subcommand(1);
  cas->fallthrough();

  CLI::App* put =
      cas->add_subcommand("put", "upload files; prints HASH/SIZE of each");
  put->add_option("files", f->put_files, "files to upload")->required();

  CLI::App* get = cas->add_subcommand("get", "download a blob (verified)");
  get->add_option("digest", f->get_digest, "HASH/SIZE")->required();
  get->add_option("-o,--output", f->get_output,
                  "file to write (default: stdout)");

  CLI::App* has =
      cas->add_subcommand("has", "check blobs; exit 1 if any is missing");
  has->add_option("digests", f->has_digests, "HASH/SIZE ...")->required();

  CLI::App* stats = cas->add_subcommand("stats", "print the CAS's counters");

  CLI::App* push_context = cas->add_subcommand(
      "push-context",
      "upload a build context (with its .dockerignore) as a REAPI tree; "
      "prints the root digest");
  push_context->add_option("dir", f->context_dir, "context directory")
      ->required();

  out->push_back({put, [f] { return CasPut(f->cas_flags, f->put_files); }});
  out->push_back({get, [f] {
                    return CasGet(f->cas_flags, f->get_digest, f->get_output);
                  }});
  out->push_back({has, [f] { return CasHas(f->cas_flags, f->has_digests); }});
  out->push_back({stats, [f] { return CasStats(f->cas_flags); }});
  out->push_back({push_context, [f] {
                    return CasPushContext(f->cas_flags, f->context_dir);
                  }});
}

}  // namespace stagefarm::cli
