#include "engine/user_db.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fs_util.h"

namespace stagefarm::engine {
namespace {

// An /etc/passwd or /etc/group line split into fields.
std::vector<std::vector<std::string>> ReadColonFile(const std::string& path) {
  std::vector<std::vector<std::string>> out;
  auto text = ReadFileToString(path);
  if (!text.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    out.push_back(absl::StrSplit(line, ':'));
  }
  return out;
}

}  // namespace

absl::StatusOr<UserIds> ResolveUser(const std::string& rootfs,
                                    const std::string& spec, bool with_groups) {
  UserIds ids;
  std::string user = spec.empty() ? "root" : spec;
  std::string group;
  bool has_group = false;
  if (size_t c = user.find(':'); c != std::string::npos) {
    group = user.substr(c + 1);
    user = user.substr(0, c);
    has_group = true;
  }
  auto passwd_path = ResolveInRoot(rootfs, "/etc/passwd", true);
  auto group_path = ResolveInRoot(rootfs, "/etc/group", true);
  auto passwd = passwd_path.ok() ? ReadColonFile(*passwd_path)
                                 : std::vector<std::vector<std::string>>{};
  auto groups = group_path.ok() ? ReadColonFile(*group_path)
                                : std::vector<std::vector<std::string>>{};
  std::string user_name;
  bool found = false;
  uint32_t n = 0;
  bool numeric = absl::SimpleAtoi(user, &n);
  for (const auto& f : passwd) {
    if (f.size() < 4) continue;
    uint32_t uid = 0, gid = 0;
    if (!absl::SimpleAtoi(f[2], &uid) || !absl::SimpleAtoi(f[3], &gid)) {
      continue;
    }
    if ((numeric && uid == n) || (!numeric && f[0] == user)) {
      ids.uid = uid;
      ids.gid = gid;
      user_name = f[0];
      found = true;
      break;
    }
  }
  if (!found) {
    // No USER (or an image without /etc/passwd): root.
    if (spec.empty()) numeric = true, n = 0;
    if (!numeric) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to find user ", user,
                       ": no matching entries in passwd file"));
    }
    ids.uid = n;
    ids.gid = 0;
  }
  if (has_group) {
    uint32_t g = 0;
    if (absl::SimpleAtoi(group, &g)) {
      ids.gid = g;
    } else {
      bool gfound = false;
      for (const auto& f : groups) {
        if (f.size() >= 3 && f[0] == group && absl::SimpleAtoi(f[2], &g)) {
          ids.gid = g;
          gfound = true;
          break;
        }
      }
      if (!gfound) {
        return absl::FailedPreconditionError(
            absl::StrCat("unable to find group ", group,
                         ": no matching entries in group file"));
      }
    }
    return ids;
  }
  if (with_groups) ids.additional.push_back(ids.gid);
  if (with_groups && found) {
    for (const auto& f : groups) {
      if (f.size() < 4) continue;
      uint32_t g = 0;
      if (!absl::SimpleAtoi(f[2], &g)) continue;
      for (absl::string_view m : absl::StrSplit(f[3], ',')) {
        if (m == user_name && g != ids.gid) ids.additional.push_back(g);
      }
    }
  }
  return ids;
}

}  // namespace stagefarm::engine
