// The commands that build and handle images with the embedded engine:
// build, image import|ls|inspect|rm|export, and run.
#ifndef STAGEFARM_CLI_LOCAL_COMMANDS_H_
#define STAGEFARM_CLI_LOCAL_COMMANDS_H_

#include <string>
#include <vector>

#include "cli/local.h"

namespace stagefarm::cli {

struct BuildFlags {
  std::string file;
  std::vector<std::string> tags;
  std::string target;
  std::vector<std::string> build_args;
  std::vector<std::string> labels;
  bool no_cache = false;
  std::vector<std::string> secrets;
  std::vector<std::string> ssh;  // --ssh ID[=SOCKET]
  std::string progress = "auto";
  std::vector<std::string> outputs;
  bool push = false;  // push every -t name to its registry
  std::string source_date_epoch;
  std::string compression = "gzip";
  int compression_level = 0;
  std::string context = ".";
  // Scheduler HOST:PORT of a farm to build on (or STAGEFARM_SERVER); the
  // farm's CAS comes from --cas.
  std::string server;
  int reattach_seconds = 60;
  int64_t log_max_bytes = 0;  // 0: the engine's or the farm's default
  // --platform: "linux/amd64,linux/arm64"; "" = this machine's platform.
  std::string platform;
  // Attestations: --provenance VALUE, --sbom, --attest type=...
  std::string provenance;
  bool sbom = false;
  std::vector<std::string> attest;
  // Build again without cache (on a farm: each stage on another worker)
  // and fail unless the image is the same.
  bool verify_reproducible = false;
  // --allow: entitlements (network.host, security.insecure).
  std::vector<std::string> allow;
  // --trace FILE: the build's timeline as Chrome trace-event JSON.
  std::string trace;
};

int BuildCommand(const LocalOptions& local, const BuildFlags& flags);
int ImageImportCommand(const LocalOptions& local, const std::string& path,
                       const std::vector<std::string>& tags);
// `stagefarm image index -t NAME IMAGE...`: tags an image index over the
// images (each a platform, or an index itself) as NAME.
int ImageIndexCommand(const LocalOptions& local, const std::string& tag,
                      const std::vector<std::string>& sources);
int ImageListCommand(const LocalOptions& local);
// `stagefarm logs --blob HASH/SIZE`: a step's whole output (the blob a
// clipped step's note names) to stdout, from the store `local` uses.
int LogBlobCommand(const LocalOptions& local, const Digest& digest);
int ImageInspectCommand(const LocalOptions& local, const std::string& name);
int ImageRemoveCommand(const LocalOptions& local,
                       const std::vector<std::string>& names);
int ImageExportCommand(const LocalOptions& local, const std::string& name,
                       const std::string& format, const std::string& output);
// `stagefarm pull REF`: fetches an image from its registry and tags it.
int PullCommand(const LocalOptions& local, const std::string& ref);
// `stagefarm push NAME [DEST]`: sends the image NAME to DEST's registry
// (NAME's own when DEST is omitted).
int PushCommand(const LocalOptions& local, const std::string& name,
                const std::string& dest);
int RunCommand(const LocalOptions& local, const std::string& image,
               const std::vector<std::string>& args);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_LOCAL_COMMANDS_H_
