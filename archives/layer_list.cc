// ListLayer: a layer's entries and their contents' digests (archives/
// layer_tar.h), for telling two builds' layers apart.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "archives/layer_stream.h"
#include "archives/layer_tar.h"
#include "archives/tar_internal.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::archives {

absl::StatusOr<std::vector<LayerEntry>> ListLayer(const ByteSource& source) {
  internal::ScopedUtf8Locale locale;
  internal::LayerStream stream(source);
  internal::LayerTarReader in(&stream);
  RETURN_IF_ERROR(in.Open());
  std::vector<LayerEntry> out;
  while (true) {
    ASSIGN_OR_RETURN(archive_entry * e, in.Next());
    if (e == nullptr) break;
    LayerEntry entry;
    const char* path = archive_entry_pathname(e);
    entry.path = path ? path : "";
    entry.mode = archive_entry_perm(e);
    entry.uid = archive_entry_uid(e);
    entry.gid = archive_entry_gid(e);
    entry.size = archive_entry_size(e);
    entry.mtime = archive_entry_mtime(e);
    if (const char* hl = archive_entry_hardlink(e)) {
      entry.type = 'h';
      entry.link = hl;
    } else {
      switch (archive_entry_filetype(e)) {
        case AE_IFDIR:
          entry.type = 'd';
          break;
        case AE_IFLNK:
          entry.type = 'l';
          entry.link = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
          break;
        case AE_IFCHR:
          entry.type = 'c';
          break;
        case AE_IFBLK:
          entry.type = 'b';
          break;
        case AE_IFIFO:
          entry.type = 'p';
          break;
        default:
          entry.type = 'f';
      }
    }
    if (entry.type == 'f') {
      Sha256 hash;
      const void* block;
      size_t size;
      la_int64_t offset;
      int rc;
      while ((rc = archive_read_data_block(in.get(), &block, &size, &offset)) ==
             ARCHIVE_OK) {
        hash.Update(absl::string_view(static_cast<const char*>(block), size));
      }
      if (rc != ARCHIVE_EOF) {
        if (!stream.error().ok()) return stream.error();
        return absl::InvalidArgumentError(absl::StrCat(
            "reading ", entry.path,
            " in the layer: ", internal::ArchiveErrorText(in.get())));
      }
      entry.sha256 = hash.FinalHex();
    }
    out.push_back(std::move(entry));
  }
  RETURN_IF_ERROR(stream.Drain());
  return out;
}

}  // namespace stagefarm::archives
