/* arsum: lists the entries of an archive (any format libarchive reads) with
 * each entry's size and CRC-32 (zlib); `arsum --version` prints the library
 * versions it was built against. Built against Debian's -dev packages. */
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

static int list(const char *path) {
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
    fprintf(stderr, "arsum: %s: %s\n", path, archive_error_string(a));
    archive_read_free(a);
    return 1;
  }
  struct archive_entry *e;
  char buf[1 << 16];
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    uLong crc = crc32(0L, Z_NULL, 0);
    long long total = 0;
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
      crc = crc32(crc, (const Bytef *)buf, (uInt)n);
      total += n;
    }
    printf("%08lx %12lld %s\n", crc, total, archive_entry_pathname(e));
  }
  archive_read_free(a);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    printf("%s, zlib %s, %s\n", archive_version_details(), zlibVersion(), curl_version());
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: arsum ARCHIVE | --version\n");
    return 2;
  }
  return list(argv[1]);
}
