#include "attest/sbom.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fs_util.h"
#include "common/json.h"
#include "nlohmann/json.hpp"

namespace stagefarm::attest {

namespace {

using json = nlohmann::json;

// Percent-encodes what a purl must not hold verbatim.
std::string PurlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
        c == '-' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%",
                      absl::StrFormat("%02X", static_cast<unsigned char>(c)));
    }
  }
  return out;
}

// "Key: value" header lines up to the first blank line (RFC 822 style, as
// dpkg, apk's P:/V: and Python's METADATA use), continuation lines
// skipped.
std::vector<std::pair<std::string, std::string>> Headers(absl::string_view para,
                                                         char sep) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view line : absl::StrSplit(para, '\n')) {
    if (line.empty() || line[0] == ' ' || line[0] == '\t') continue;
    size_t colon = line.find(sep);
    if (colon == absl::string_view::npos) continue;
    out.emplace_back(
        std::string(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return out;
}

std::vector<absl::string_view> Paragraphs(absl::string_view text) {
  std::vector<absl::string_view> out;
  for (absl::string_view p : absl::StrSplit(text, "\n\n")) {
    if (!absl::StripAsciiWhitespace(p).empty()) out.push_back(p);
  }
  return out;
}

// Reads an unsigned LEB128 varint at *pos.
bool Uvarint(absl::string_view data, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *pos < data.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(data[(*pos)++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

std::string Trimmed(const std::string& text, size_t limit = 200) {
  std::string s(absl::StripAsciiWhitespace(text));
  return s.size() > limit ? s.substr(0, limit) : s;
}

// The first "License:" of a machine-readable Debian copyright file.
std::string DebianLicense(const std::string& root, const std::string& pkg) {
  auto text = ReadFileToString(
      absl::StrCat(root, "/usr/share/doc/", pkg, "/copyright"));
  if (!text.ok() || !absl::StrContains(*text, "Format:")) return "";
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::ConsumePrefix(&line, "License:")) {
      return Trimmed(std::string(line));
    }
  }
  return "";
}

}  // namespace

std::string Package::Purl() const {
  std::string ns = type == "deb" ? "debian/" : type == "apk" ? "alpine/" : "";
  std::string n = name;
  std::string escaped_name;
  if (type == "npm" && absl::StartsWith(n, "@")) {
    // pkg:npm/%40scope/name
    size_t slash = n.find('/');
    escaped_name = slash == std::string::npos
                       ? PurlEscape(n)
                       : absl::StrCat(PurlEscape(n.substr(0, slash)), "/",
                                      PurlEscape(n.substr(slash + 1)));
  } else if (type == "golang") {
    std::vector<std::string> parts = absl::StrSplit(n, '/');
    for (std::string& p : parts) p = PurlEscape(p);
    escaped_name = absl::StrJoin(parts, "/");
  } else {
    escaped_name = PurlEscape(n);
  }
  std::string out = absl::StrCat("pkg:", type, "/", ns, escaped_name);
  if (!version.empty()) absl::StrAppend(&out, "@", PurlEscape(version));
  if (!arch.empty()) absl::StrAppend(&out, "?arch=", PurlEscape(arch));
  return out;
}

std::vector<Package> ParseDpkgStatus(absl::string_view text,
                                     const std::string& found_in) {
  std::vector<Package> out;
  for (absl::string_view para : Paragraphs(text)) {
    Package p;
    p.type = "deb";
    p.found_in = found_in;
    bool installed = false;
    for (const auto& [k, v] : Headers(para, ':')) {
      if (k == "Package") p.name = v;
      if (k == "Version") p.version = v;
      if (k == "Architecture") p.arch = v;
      if (k == "Status") installed = absl::EndsWith(v, " installed");
    }
    if (installed && !p.name.empty()) out.push_back(std::move(p));
  }
  return out;
}

std::vector<Package> ParseApkInstalled(absl::string_view text,
                                       const std::string& found_in) {
  std::vector<Package> out;
  for (absl::string_view para : Paragraphs(text)) {
    Package p;
    p.type = "apk";
    p.found_in = found_in;
    for (const auto& [k, v] : Headers(para, ':')) {
      if (k == "P") p.name = v;
      if (k == "V") p.version = v;
      if (k == "A") p.arch = v;
      if (k == "L") p.license = v;
    }
    if (!p.name.empty()) out.push_back(std::move(p));
  }
  return out;
}

std::vector<Package> ParsePackageLock(absl::string_view text,
                                      const std::string& found_in) {
  std::vector<Package> out;
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (!j.is_object()) return out;
  auto str = [](const json& o, const char* k) {
    return o.is_object() && o.contains(k) && o[k].is_string()
               ? o[k].get<std::string>()
               : std::string();
  };
  if (j.contains("packages") && j["packages"].is_object()) {
    // lockfileVersion 2 and 3: "node_modules/a/node_modules/@s/b": {...}.
    for (auto it = j["packages"].begin(); it != j["packages"].end(); ++it) {
      const std::string& key = it.key();
      size_t at = key.rfind("node_modules/");
      if (key.empty() || at == std::string::npos) continue;
      if (it.value().is_object() && it.value().value("link", false)) continue;
      Package p;
      p.type = "npm";
      p.found_in = found_in;
      p.name = key.substr(at + 13);
      p.version = str(it.value(), "version");
      p.license = str(it.value(), "license");
      if (!p.name.empty() && !p.version.empty()) out.push_back(std::move(p));
    }
    return out;
  }
  if (j.contains("dependencies") && j["dependencies"].is_object()) {
    // lockfileVersion 1: nested "dependencies".
    std::vector<const json*> todo = {&j["dependencies"]};
    while (!todo.empty()) {
      const json* deps = todo.back();
      todo.pop_back();
      for (auto it = deps->begin(); it != deps->end(); ++it) {
        Package p;
        p.type = "npm";
        p.found_in = found_in;
        p.name = it.key();
        p.version = str(it.value(), "version");
        if (!p.version.empty()) out.push_back(p);
        if (it.value().is_object() && it.value().contains("dependencies") &&
            it.value()["dependencies"].is_object()) {
          todo.push_back(&it.value()["dependencies"]);
        }
      }
    }
  }
  return out;
}

std::vector<Package> ParsePythonMetadata(absl::string_view text,
                                         const std::string& found_in) {
  std::vector<Package> out;
  size_t end = text.find("\n\n");
  Package p;
  p.type = "pypi";
  p.found_in = found_in;
  for (const auto& [k, v] : Headers(
           text.substr(0, end == absl::string_view::npos ? text.size() : end),
           ':')) {
    if (k == "Name" && p.name.empty()) p.name = v;
    if (k == "Version" && p.version.empty()) p.version = v;
    if (k == "License" && p.license.empty() && v != "UNKNOWN") {
      p.license = Trimmed(v);
    }
  }
  if (!p.name.empty()) out.push_back(std::move(p));
  return out;
}

std::vector<Package> ParseGoBuildInfo(absl::string_view binary,
                                      const std::string& found_in) {
  std::vector<Package> out;
  static constexpr absl::string_view kMagic("\xff Go buildinf:", 14);
  size_t at = binary.find(kMagic);
  // Go 1.18 and later: flags bit 2 means the strings follow the header.
  if (at == absl::string_view::npos || at + 32 > binary.size() ||
      (static_cast<uint8_t>(binary[at + 15]) & 0x2) == 0) {
    return out;
  }
  size_t pos = at + 32;
  uint64_t n = 0;
  if (!Uvarint(binary, &pos, &n) || pos + n > binary.size()) return out;
  std::string go_version(binary.substr(pos, n));
  pos += n;
  if (!Uvarint(binary, &pos, &n) || pos + n > binary.size()) return out;
  absl::string_view mod = binary.substr(pos, n);
  // The module text sits between two 16-byte sentinels.
  if (mod.size() >= 33) mod = mod.substr(16, mod.size() - 32);
  Package stdlib;
  stdlib.type = "golang";
  stdlib.name = "stdlib";
  stdlib.version = go_version;
  stdlib.license = "BSD-3-Clause";
  stdlib.found_in = found_in;
  if (absl::StartsWith(go_version, "go")) out.push_back(stdlib);
  for (absl::string_view line : absl::StrSplit(mod, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() >= 3 && (f[0] == "mod" || f[0] == "dep")) {
      Package p;
      p.type = "golang";
      p.name = f[1];
      p.version = f[2];
      p.found_in = found_in;
      out.push_back(std::move(p));
    }
  }
  return out;
}

std::vector<Package> ClassifyBinary(absl::string_view binary,
                                    const std::string& found_in) {
  std::vector<Package> out;
  // BusyBox prints its banner from this string: "BusyBox v1.35.0 (...)".
  static constexpr absl::string_view kBusyBox = "BusyBox v";
  size_t at = binary.find(kBusyBox);
  if (at == absl::string_view::npos) return out;
  size_t v = at + kBusyBox.size();
  size_t end = v;
  while (end < binary.size() && end - v < 32 &&
         (absl::ascii_isdigit(static_cast<unsigned char>(binary[end])) ||
          binary[end] == '.')) {
    ++end;
  }
  if (end == v) return out;
  Package p;
  p.type = "generic";
  p.name = "busybox";
  p.version = std::string(binary.substr(v, end - v));
  p.license = "GPL-2.0-only";
  p.found_in = found_in;
  out.push_back(std::move(p));
  return out;
}

absl::StatusOr<std::vector<Package>> ScanRootfs(const std::string& root,
                                                size_t max_files) {
  namespace fs = std::filesystem;
  std::vector<Package> all;
  auto add = [&all](std::vector<Package> found) {
    for (Package& p : found) all.push_back(std::move(p));
  };
  auto read = [&root](const std::string& rel) {
    return ReadFileToString(root + rel);
  };
  if (auto t = read("/var/lib/dpkg/status"); t.ok()) {
    std::vector<Package> debs = ParseDpkgStatus(*t, "/var/lib/dpkg/status");
    for (Package& p : debs) p.license = DebianLicense(root, p.name);
    add(std::move(debs));
  }
  if (auto t = read("/lib/apk/db/installed"); t.ok()) {
    add(ParseApkInstalled(*t, "/lib/apk/db/installed"));
  }
  std::error_code ec;
  size_t seen = 0;
  fs::recursive_directory_iterator it(
      root, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot scan ", root, ": ", ec.message()));
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (++seen > max_files) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the image has more than ", max_files, " files to scan"));
    }
    const fs::directory_entry& e = *it;
    if (e.is_symlink(ec)) continue;
    std::string path = e.path().string();
    std::string rel = path.substr(root.size());
    std::string name = e.path().filename().string();
    if (e.is_directory(ec)) {
      if (rel == "/proc" || rel == "/sys" || rel == "/dev") {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (!e.is_regular_file(ec)) continue;
    if (name == "package-lock.json" &&
        !absl::StrContains(rel, "/node_modules/")) {
      if (auto t = ReadFileToString(path); t.ok()) {
        add(ParsePackageLock(*t, rel));
      }
    } else if (name == "package.json" &&
               absl::StrContains(rel, "/node_modules/")) {
      // An installed module: node_modules/<name>/package.json or
      // node_modules/@scope/<name>/package.json.
      std::string dir = rel.substr(0, rel.size() - 13);
      size_t nm = dir.rfind("/node_modules/");
      std::string mod = dir.substr(nm + 14);
      if (std::count(mod.begin(), mod.end(), '/') !=
          (absl::StartsWith(mod, "@") ? 1 : 0)) {
        continue;
      }
      auto t = ReadFileToString(path);
      if (!t.ok()) continue;
      json j = json::parse(*t, nullptr, false);
      if (!j.is_object() || !j.contains("version") ||
          !j["version"].is_string()) {
        continue;
      }
      Package p;
      p.type = "npm";
      p.name = mod;
      p.version = j["version"].get<std::string>();
      if (j.contains("license") && j["license"].is_string()) {
        p.license = j["license"].get<std::string>();
      }
      p.found_in = rel;
      all.push_back(std::move(p));
    } else if (name == "METADATA" &&
               absl::EndsWith(e.path().parent_path().string(), ".dist-info")) {
      if (auto t = ReadFileToString(path); t.ok()) {
        add(ParsePythonMetadata(*t, rel));
      }
    } else if (e.file_size(ec) < (64 << 20) && e.file_size(ec) > 4096 &&
               (e.status(ec).permissions() & fs::perms::owner_exec) !=
                   fs::perms::none) {
      auto t = ReadFileToString(path);
      if (t.ok() && absl::StartsWith(*t,
                                     "\x7f"
                                     "ELF")) {
        add(ParseGoBuildInfo(*t, rel));
        add(ClassifyBinary(*t, rel));
      }
    }
  }
  auto key = [](const Package& p) {
    return std::tie(p.type, p.name, p.version, p.arch);
  };
  std::sort(all.begin(), all.end(), [&](const Package& a, const Package& b) {
    return key(a) < key(b) || (key(a) == key(b) && a.found_in < b.found_in);
  });
  all.erase(std::unique(all.begin(), all.end(),
                        [&](const Package& a, const Package& b) {
                          return key(a) == key(b);
                        }),
            all.end());
  return all;
}

std::string SpdxDocument(const std::vector<Package>& packages,
                         const std::string& name, const std::string& created,
                         const std::string& namespace_id) {
  json pkgs = json::array();
  int i = 0;
  for (const Package& p : packages) {
    std::string id = absl::StrCat("SPDXRef-Package-", p.type, "-", ++i);
    json j{{"SPDXID", id},
           {"name", p.name},
           {"versionInfo", p.version},
           {"downloadLocation", "NOASSERTION"},
           {"filesAnalyzed", false},
           {"licenseConcluded", "NOASSERTION"},
           {"licenseDeclared", p.license.empty() ? "NOASSERTION" : p.license},
           {"copyrightText", "NOASSERTION"},
           {"sourceInfo", absl::StrCat("found in ", p.found_in)},
           {"externalRefs",
            json::array({json{{"referenceCategory", "PACKAGE-MANAGER"},
                              {"referenceType", "purl"},
                              {"referenceLocator", p.Purl()}}})}};
    pkgs.push_back(std::move(j));
  }
  json doc{{"spdxVersion", "SPDX-2.3"},
           {"dataLicense", "CC0-1.0"},
           {"SPDXID", "SPDXRef-DOCUMENT"},
           {"name", name},
           {"documentNamespace",
            absl::StrCat("https://stagefarm.invalid/spdx/", namespace_id)},
           {"creationInfo",
            {{"created", created}, {"creators", {"Tool: stagefarm-0.1.0"}}}},
           {"packages", std::move(pkgs)}};
  return stagefarm::json::Dump(doc);
}

}  // namespace stagefarm::attest
