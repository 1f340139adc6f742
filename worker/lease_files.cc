#include "worker/lease_files.h"

#include <dirent.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/fs_util.h"

namespace stagefarm::worker {

std::string LeaseFiles::PathOf(const std::string& lease_id) const {
  return absl::StrCat(dir_, "/", absl::BytesToHexString(lease_id));
}

absl::Status LeaseFiles::Note(const v1::HeldStage& held) const {
  absl::Status s = MakeDirs(dir_, 0700);
  if (!s.ok()) return s;
  return WriteFileAtomically(PathOf(held.lease_id()), held.SerializeAsString(),
                             0600);
}

void LeaseFiles::Forget(const std::string& lease_id) const {
  (void)unlink(PathOf(lease_id).c_str());
}

std::vector<v1::HeldStage> LeaseFiles::Leftovers() const {
  std::vector<v1::HeldStage> found;
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return found;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string path = absl::StrCat(dir_, "/", e->d_name);
    absl::StatusOr<std::string> bytes = ReadFileToString(path);
    v1::HeldStage held;
    if (!bytes.ok() || !held.ParseFromString(*bytes) ||
        held.lease_id().empty()) {
      (void)unlink(path.c_str());
      continue;
    }
    found.push_back(std::move(held));
  }
  closedir(d);
  return found;
}

}  // namespace stagefarm::worker
