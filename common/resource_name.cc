#include "common/resource_name.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace stagefarm {
namespace {

constexpr size_t kMaxInstanceNameBytes = 1024;

bool IsReserved(absl::string_view segment) {
  return segment == "blobs" || segment == "uploads" ||
         segment == "compressed-blobs" || segment == "actions" ||
         segment == "actionResults" || segment == "operations" ||
         segment == "capabilities";
}

bool IsDigestFunctionName(absl::string_view s) {
  if (s.empty() || s.size() == 64) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c)) return false;
  }
  // A hex string is a (wrong-length) hash, not a function name, unless it is
  // one of the spec's names.
  bool all_hex = true;
  for (char c : s) all_hex = all_hex && absl::ascii_isxdigit(c);
  return !all_hex || s == "md5";
}

// Parses "[{digest_function}/]{hash}/{size}[/...]" starting at segments[i].
absl::StatusOr<Digest> ParseDigestSegments(
    const std::vector<absl::string_view>& segments, size_t i,
    absl::string_view name) {
  if (i < segments.size() && IsDigestFunctionName(segments[i])) {
    if (segments[i] != "sha256") {
      return absl::InvalidArgumentError(absl::StrCat(
          "resource_name \"", name, "\": unknown digest function \"",
          segments[i], "\" (this server supports sha256)"));
    }
    ++i;
  }
  if (i + 2 > segments.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource_name \"", name, "\": expected .../{hash}/{size}"));
  }
  int64_t size = 0;
  if (!absl::SimpleAtoi(segments[i + 1], &size) ||
      !absl::ascii_isdigit(segments[i + 1].empty() ? 'x'
                                                   : segments[i + 1][0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource_name \"", name, "\": size \"", segments[i + 1],
                     "\" is not a non-negative integer"));
  }
  return Digest::Parse(segments[i], size,
                       absl::StrCat("resource_name \"", name, "\" digest"));
}

// Index of the first reserved segment, or segments.size().
size_t FindReserved(const std::vector<absl::string_view>& segments) {
  for (size_t i = 0; i < segments.size(); ++i) {
    if (IsReserved(segments[i])) return i;
  }
  return segments.size();
}

}  // namespace

absl::Status ValidateInstanceName(absl::string_view instance_name,
                                  absl::string_view field) {
  if (instance_name.empty()) return absl::OkStatus();
  if (instance_name.size() > kMaxInstanceNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", kMaxInstanceNameBytes, " bytes"));
  }
  if (instance_name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains NUL"));
  }
  for (absl::string_view segment : absl::StrSplit(instance_name, '/')) {
    if (segment.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " \"", instance_name, "\": empty path segment"));
    }
    if (IsReserved(segment)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " \"", instance_name, "\": segment \"", segment,
                       "\" is reserved"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReadResourceName> ParseReadResourceName(absl::string_view name) {
  std::vector<absl::string_view> segments = absl::StrSplit(name, '/');
  size_t i = FindReserved(segments);
  if (i == segments.size() || segments[i] != "blobs") {
    if (i < segments.size() && segments[i] == "compressed-blobs") {
      return absl::InvalidArgumentError(
          absl::StrCat("resource_name \"", name,
                       "\": compressed-blobs are not supported (no compressors "
                       "advertised)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("resource_name \"", name,
                     "\": expected {instance_name}/blobs/{hash}/{size}"));
  }
  ReadResourceName out;
  out.instance_name =
      absl::StrJoin(segments.begin(), segments.begin() + i, "/");
  RETURN_IF_ERROR(
      ValidateInstanceName(out.instance_name, "resource_name instance"));
  ASSIGN_OR_RETURN(out.digest, ParseDigestSegments(segments, i + 1, name));
  return out;
}

absl::StatusOr<WriteResourceName> ParseWriteResourceName(
    absl::string_view name) {
  std::vector<absl::string_view> segments = absl::StrSplit(name, '/');
  size_t i = FindReserved(segments);
  if (i == segments.size() || segments[i] != "uploads" ||
      i + 2 >= segments.size() || segments[i + 1].empty() ||
      (segments[i + 2] != "blobs")) {
    if (i + 2 < segments.size() && segments[i + 2] == "compressed-blobs") {
      return absl::InvalidArgumentError(
          absl::StrCat("resource_name \"", name,
                       "\": compressed-blobs are not supported (no compressors "
                       "advertised)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "resource_name \"", name,
        "\": expected {instance_name}/uploads/{uuid}/blobs/{hash}/{size}"));
  }
  WriteResourceName out;
  out.instance_name =
      absl::StrJoin(segments.begin(), segments.begin() + i, "/");
  RETURN_IF_ERROR(
      ValidateInstanceName(out.instance_name, "resource_name instance"));
  out.uuid = std::string(segments[i + 1]);
  ASSIGN_OR_RETURN(out.digest, ParseDigestSegments(segments, i + 3, name));
  return out;
}

std::string MakeReadResourceName(absl::string_view instance_name,
                                 const Digest& digest) {
  return absl::StrCat(instance_name, instance_name.empty() ? "" : "/", "blobs/",
                      digest.hash(), "/", digest.size());
}

std::string MakeWriteResourceName(absl::string_view instance_name,
                                  absl::string_view uuid,
                                  const Digest& digest) {
  return absl::StrCat(instance_name, instance_name.empty() ? "" : "/",
                      "uploads/", uuid, "/blobs/", digest.hash(), "/",
                      digest.size());
}

}  // namespace stagefarm
