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
#include "common/json.h"
#include "common/status_macros.h"
#include "engine/copy.h"
#include "engine/stage_runner.h"
#include "engine/user_db.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/parser.h"
#include "http/fetch.h"

namespace stagefarm::engine {

absl::Status StageRunner::RunWorkdir(const ExpandedStep& step) {
  std::string path =
      JoinWorkdir(Workdir(), step.words.empty() ? "/" : step.words[0]);
  Cfg()["WorkingDir"] = path;
  std::string user = Cfg().value("User", "");
  std::string key = KeyOf(KeyBuilder(step).Add("path", path).Add("user", user));
  std::string history = absl::StrCat("WORKDIR ", path);
  ASSIGN_OR_RETURN(std::optional<double> started,
                   Begin(key, history, Display(step)));
  if (!started) return absl::OkStatus();  // from the cache
  ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
  ASSIGN_OR_RETURN(UserIds ids, ResolveUser(rootfs.path(), user, false));
  ASSIGN_OR_RETURN(std::string host, ResolveInRoot(rootfs.path(), path, true));
  std::string cur = rootfs.path();
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(host).substr(cur.size()), '/',
                      absl::SkipEmpty())) {
    absl::StrAppend(&cur, "/", part);
    struct stat st;
    if (lstat(cur.c_str(), &st) == 0) continue;
    if (mkdir(cur.c_str(), 0755) != 0 ||
        lchown(cur.c_str(), ids.uid, ids.gid) != 0) {
      return absl::InternalError(
          absl::StrCat(At(*step.instruction), ": cannot create ", path));
    }
  }
  return Finish(std::move(rootfs), key, history, *started);
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::FromInst&) {
  return absl::UnimplementedError(
      absl::StrCat(At(*step.instruction),
                   ": FROM is not supported by this version's build engine"));
}

absl::Status StageRunner::Step(const ExpandedStep&,
                               const dockerfile::ArgInst&) {
  // ARG changes what later steps see; their keys include that.
  return absl::OkStatus();
}

absl::Status StageRunner::Metadata(const ExpandedStep& step) {
  std::optional<MetadataChange> change =
      ApplyMetadata(step, &state_.config, &cmd_set_);
  if (!change) {
    return absl::InternalError(
        absl::StrCat(At(*step.instruction), ": ", step.instruction->keyword,
                     " changes more than the image config"));
  }
  cachekey::CacheKeyBuilder key = KeyBuilder(step);
  if (change->key_is_list) {
    key.AddList(change->key_name, change->key_values);
  } else {
    key.Add(change->key_name,
            change->key_values.empty() ? "" : change->key_values[0]);
  }
  state_.key = key.Finish();
  AddHistory(change->history, true);
  return absl::OkStatus();
}

}  // namespace stagefarm::engine
