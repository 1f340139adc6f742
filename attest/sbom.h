// Software bills of materials: the packages installed in a root file
// system, found by the project's own scanner, as an SPDX 2.3 JSON
// document. Readers: Debian (var/lib/dpkg/status), Alpine
// (lib/apk/db/installed), Node (package-lock.json and
// node_modules/*/package.json), Python (*.dist-info/METADATA) and Go
// binaries (their embedded build info), and BusyBox by its banner. Pure but for
// reading the files; thread-compatible.
#ifndef STAGEFARM_ATTEST_SBOM_H_
#define STAGEFARM_ATTEST_SBOM_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::attest {

struct Package {
  std::string type;  // purl type: deb, apk, npm, pypi, golang
  std::string name;
  std::string version;
  std::string license;   // "" when unknown
  std::string arch;      // deb and apk: the package's architecture
  std::string found_in;  // the file it was read from, absolute in the image
  // "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64".
  std::string Purl() const;
};

// Every package found under `root` (a root file system), sorted by type,
// name and version, duplicates dropped. Files that cannot be parsed are
// skipped. `max_files` bounds the directory walk.
absl::StatusOr<std::vector<Package>> ScanRootfs(const std::string& root,
                                                size_t max_files = 2000000);

// The readers, one format each (exposed for tests).
std::vector<Package> ParseDpkgStatus(absl::string_view text,
                                     const std::string& found_in);
std::vector<Package> ParseApkInstalled(absl::string_view text,
                                       const std::string& found_in);
std::vector<Package> ParsePackageLock(absl::string_view text,
                                      const std::string& found_in);
std::vector<Package> ParsePythonMetadata(absl::string_view text,
                                         const std::string& found_in);
// The Go build info of an executable's bytes: the main module and its
// dependencies (nothing when the file is not a Go binary).
std::vector<Package> ParseGoBuildInfo(absl::string_view binary,
                                      const std::string& found_in);

// Programs known by a string they carry (BusyBox's banner): what neither
// a package database nor build info names.
std::vector<Package> ClassifyBinary(absl::string_view binary,
                                    const std::string& found_in);

// An SPDX 2.3 JSON document naming `packages`; `name` is the image,
// `created` RFC 3339, `namespace_id` makes documentNamespace unique (the
// image digest).
std::string SpdxDocument(const std::vector<Package>& packages,
                         const std::string& name, const std::string& created,
                         const std::string& namespace_id);

}  // namespace stagefarm::attest

#endif  // STAGEFARM_ATTEST_SBOM_H_
