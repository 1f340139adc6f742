#include "archives/archive_extract.h"

#include <archive.h>
#include <archive_entry.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/fs_util.h"

namespace stagefarm::archives {
namespace {

// A member name (or hard link target) that stays inside the destination.
bool Escapes(const std::string& name) {
  return (!name.empty() && name[0] == '/') ||
         absl::StrContains(absl::StrCat("/", name, "/"), "/../");
}

}  // namespace

int64_t MaxUnpackBytes() {
  int64_t limit = int64_t{32} << 30;
  if (const char* v = getenv("STAGEFARM_MAX_UNPACK_BYTES"); v != nullptr) {
    int64_t n = 0;
    if (absl::SimpleAtoi(v, &n) && n > 0) limit = n;
  }
  return limit;
}

absl::Status UnpackLimitError(int64_t limit, absl::string_view entry) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the archive unpacks to more than ", limit,
      " bytes (the limit, STAGEFARM_MAX_UNPACK_BYTES); stopped at entry \"",
      entry, "\""));
}

absl::Status ExtractArchive(const std::string& path, const std::string& dest,
                            const ExtractOptions& options) {
  const int64_t limit = MaxUnpackBytes();
  const std::string prefix = options.what.empty() ? "" : options.what + ": ";
  int64_t unpacked = 0;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  struct archive* w = archive_write_disk_new();
  int flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NODOTDOT;
  if (options.keep_owner) flags |= ARCHIVE_EXTRACT_OWNER;
  if (options.keep_times) flags |= ARCHIVE_EXTRACT_TIME;
  if (options.unlink) flags |= ARCHIVE_EXTRACT_UNLINK;
  archive_write_disk_set_options(w, flags);
  absl::Status status;
  if (archive_read_open_filename(a, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    status = absl::InvalidArgumentError(absl::StrCat(
        prefix, "cannot open the archive: ", archive_error_string(a)));
  }
  struct archive_entry* e = nullptr;
  while (status.ok()) {
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      status = absl::InvalidArgumentError(
          absl::StrCat(prefix, "bad archive: ", archive_error_string(a)));
      break;
    }
    const char* raw = archive_entry_pathname(e);
    std::string name = raw == nullptr ? "" : raw;
    if (Escapes(name)) {
      status = absl::InvalidArgumentError(
          absl::StrCat(prefix, "archive entry \"", name,
                       "\" would be written outside the destination"));
      break;
    }
    std::string clean = CleanAbsolute(name);
    if (clean == "/") continue;
    archive_entry_set_pathname(e, (dest + clean).c_str());
    if (const char* link = archive_entry_hardlink(e)) {
      std::string l = link;
      if (Escapes(l) || CleanAbsolute(l) == "/") {
        status = absl::InvalidArgumentError(
            absl::StrCat(prefix, "archive entry \"", name,
                         "\" links outside the destination"));
        break;
      }
      archive_entry_set_hardlink(e, (dest + CleanAbsolute(l)).c_str());
    }
    if (options.uid) archive_entry_set_uid(e, *options.uid);
    if (options.gid) archive_entry_set_gid(e, *options.gid);
    archive_entry_set_uname(e, nullptr);
    archive_entry_set_gname(e, nullptr);
    if (options.mode && archive_entry_filetype(e) != AE_IFLNK) {
      archive_entry_set_perm(
          e, options.mode(archive_entry_perm(e),
                          archive_entry_filetype(e) == AE_IFDIR));
    }
    r = archive_write_header(w, e);
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      status = absl::InvalidArgumentError(absl::StrCat(
          prefix, "archive entry \"", name, "\": ", archive_error_string(w)));
      break;
    }
    const void* buf;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(a, &buf, &size, &offset)) ==
           ARCHIVE_OK) {
      unpacked += static_cast<int64_t>(size);
      if (unpacked > limit) {
        status = UnpackLimitError(limit, name);
        break;
      }
      if (archive_write_data_block(w, buf, size, offset) != ARCHIVE_OK) {
        status = absl::InternalError(absl::StrCat(
            prefix, "archive entry \"", name, "\": ", archive_error_string(w)));
        break;
      }
    }
    if (status.ok() && r != ARCHIVE_EOF) {
      status = absl::InvalidArgumentError(absl::StrCat(
          prefix, "archive entry \"", name, "\": ", archive_error_string(a)));
    }
    archive_write_finish_entry(w);
  }
  archive_write_close(w);
  archive_write_free(w);
  archive_read_free(a);
  return status;
}

}  // namespace stagefarm::archives
