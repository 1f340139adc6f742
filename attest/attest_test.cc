#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "attest/attach.h"
#include "attest/provenance.h"
#include "attest/sbom.h"
#include "blobstore/memory_blob_store.h"
#include "gtest/gtest.h"

namespace stagefarm::attest {
namespace {

namespace fs = std::filesystem;

std::string Names(const std::vector<Package>& ps) {
  std::string out;
  for (const Package& p : ps)
    out += p.type + ":" + p.name + "@" + p.version + " ";
  return out;
}

TEST(Sbom, DebianStatusListsInstalledPackagesOnly) {
  auto ps = ParseDpkgStatus(
      "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\n"
      "Architecture: amd64\nDescription: shell\n more text\n\n"
      "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n",
      "/var/lib/dpkg/status");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].Purl(), "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64");
}

TEST(Sbom, AlpineNodePythonReaders) {
  auto apk = ParseApkInstalled(
      "P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\nP:zlib\nV:1.3\n",
      "/lib/apk/db/installed");
  EXPECT_EQ(Names(apk), "apk:musl@1.2.4-r2 apk:zlib@1.3 ");
  EXPECT_EQ(apk[0].license, "MIT");
  auto lock3 = ParsePackageLock(
      R"({"lockfileVersion":3,"packages":{"":{"name":"app"},
      "node_modules/express":{"version":"4.18.2","license":"MIT"},
      "node_modules/express/node_modules/@types/node":{"version":"20.1.0"},
      "node_modules/linked":{"link":true}}})",
      "/app/package-lock.json");
  EXPECT_EQ(Names(lock3), "npm:express@4.18.2 npm:@types/node@20.1.0 ");
  EXPECT_EQ(lock3[1].Purl(), "pkg:npm/%40types/node@20.1.0");
  auto lock1 = ParsePackageLock(
      R"({"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0",
      "dependencies":{"b":{"version":"2.0.0"}}}}})",
      "/x/package-lock.json");
  EXPECT_EQ(lock1.size(), 2u);
  EXPECT_TRUE(ParsePackageLock("not json", "/p").empty());
  auto py = ParsePythonMetadata(
      "Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\nLicense: "
      "Apache 2.0\n\nLong description\nName: not-this\n",
      "/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA");
  EXPECT_EQ(Names(py), "pypi:requests@2.28.1 ");
  EXPECT_EQ(py[0].license, "Apache 2.0");
}

// Go 1.18+ build info: magic, pointer size, flags (2: inline strings),
// padding to 32 bytes, then the version and the module text as
// varint-prefixed strings, the latter between 16-byte sentinels.
std::string GoBinary(const std::string& version, const std::string& mod) {
  std::string header("\xff Go buildinf:", 14);
  header += '\x08';
  header += '\x02';
  header.resize(32, '\0');
  std::string sentinel(16, '\x30');
  std::string wrapped = sentinel + mod + sentinel;
  std::string out =
      "\x7f"
      "ELF" +
      std::string(100, '\0') + header;
  out += static_cast<char>(version.size());
  out += version;
  out += static_cast<char>(wrapped.size() & 0x7f | 0x80);
  out += static_cast<char>(wrapped.size() >> 7);
  out += wrapped;
  return out;
}

TEST(Sbom, GoBuildInfo) {
  std::string mod =
      "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
      "dep\tgolang.org/x/net\tv0.7.0\th1:abc=\n";
  auto ps = ParseGoBuildInfo(GoBinary("go1.19.8", mod), "/app");
  EXPECT_EQ(Names(ps),
            "golang:stdlib@go1.19.8 golang:example.com/app@(devel) "
            "golang:golang.org/x/net@v0.7.0 ");
  EXPECT_EQ(ps[2].Purl(), "pkg:golang/golang.org/x/net@v0.7.0");
  EXPECT_TRUE(ParseGoBuildInfo("\x7f"
                               "ELF plain binary",
                               "/bin/x")
                  .empty());
}

TEST(Sbom, BusyBoxByItsBanner) {
  std::string bin(
      "\x7f"
      "ELF..BusyBox v1.35.0 (Debian 1:1.35.0-4+b3)");
  auto bb = ClassifyBinary(bin, "/bin/busybox");
  EXPECT_EQ(Names(bb), "generic:busybox@1.35.0 ");
  EXPECT_EQ(bb[0].Purl(), "pkg:generic/busybox@1.35.0");
  EXPECT_TRUE(ClassifyBinary("\x7f"
                             "ELF..BusyBox v",
                             "/x")
                  .empty());
}

TEST(Sbom, ScanRootfsFindsEachKindOnce) {
  const char* tmp = getenv("TEST_TMPDIR");
  fs::path root = fs::path(tmp ? tmp : "/tmp") / "sbom-root";
  fs::remove_all(root);
  fs::create_directories(root / "var/lib/dpkg");
  fs::create_directories(root / "app/node_modules/express");
  fs::create_directories(root / "usr/share/doc/bash");
  std::ofstream(root / "var/lib/dpkg/status")
      << "Package: bash\nStatus: install ok installed\nVersion: 5.2\n"
         "Architecture: amd64\n";
  std::ofstream(root / "usr/share/doc/bash/copyright")
      << "Format: https://www.debian.org/doc/packaging-manuals/"
         "copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n";
  std::ofstream(root / "app/package-lock.json")
      << R"({"lockfileVersion":3,"packages":{"node_modules/express":{"version":"4.18.2"}}})";
  std::ofstream(root / "app/node_modules/express/package.json")
      << R"({"name":"express","version":"4.18.2","license":"MIT"})";
  std::string bin = GoBinary("go1.19.8", "path\tcommand-line-arguments\n");
  bin.resize(8192, '\0');
  std::ofstream(root / "app/server", std::ios::binary) << bin;
  fs::permissions(root / "app/server", fs::perms::owner_all);
  auto ps = ScanRootfs(root.string());
  ASSERT_TRUE(ps.ok()) << ps.status();
  EXPECT_EQ(Names(*ps),
            "deb:bash@5.2 golang:stdlib@go1.19.8 npm:express@4.18.2 ");
  EXPECT_EQ((*ps)[0].license, "GPL-3+");
  std::string spdx = SpdxDocument(*ps, "app:1", "2026-12-02T00:00:00Z", "abc");
  auto doc = nlohmann::json::parse(spdx);
  EXPECT_EQ(doc["spdxVersion"], "SPDX-2.3");
  EXPECT_EQ(doc["packages"].size(), 3u);
  EXPECT_EQ(doc["packages"][2]["externalRefs"][0]["referenceLocator"],
            "pkg:npm/express@4.18.2");
  fs::remove_all(root);
}

TEST(Provenance, MinHidesArgValuesAndSecretsAreNamesOnly) {
  ProvenanceInput in;
  in.subjects = {{"pkg:docker/app@1?platform=linux%2Famd64", "aa"}};
  in.dockerfile_name = "Dockerfile";
  in.dockerfile_sha256 = "dd";
  in.build_args = {{"TOKEN_HINT", "visible-only-in-max"}};
  in.secret_ids = {"npmrc"};
  in.dependencies = {
      {"pkg:docker/busybox@latest?platform=linux%2Famd64", "bb"}};
  in.builder_id = "https://farm.example/scheduler";
  nlohmann::json min = ProvenanceStatement(in);
  EXPECT_EQ(min["predicateType"], kSlsaProvenanceV1);
  EXPECT_EQ(min["subject"][0]["digest"]["sha256"], "aa");
  const auto& def = min["predicate"]["buildDefinition"];
  EXPECT_EQ(
      def["externalParameters"]["request"]["args"]["build-arg:TOKEN_HINT"], "");
  EXPECT_EQ(def["externalParameters"]["request"]["secrets"][0]["id"], "npmrc");
  EXPECT_EQ(def["resolvedDependencies"][0]["digest"]["sha256"], "bb");
  EXPECT_FALSE(def["internalParameters"].contains("buildConfig"));
  in.max = true;
  in.layout = nlohmann::json::array({{{"stage", "build"}}});
  nlohmann::json max = ProvenanceStatement(in);
  EXPECT_EQ(max["predicate"]["buildDefinition"]["externalParameters"]["request"]
               ["args"]["build-arg:TOKEN_HINT"],
            "visible-only-in-max");
  EXPECT_EQ(max["predicate"]["buildDefinition"]["internalParameters"]
               ["buildConfig"][0]["stage"],
            "build");
}

TEST(Attach, AttestationsRideInTheIndexAndComeBack) {
  MemoryBlobStore blobs;
  image::ImageStore store(&blobs, "ns", "/nonexistent/index.json");
  ASSERT_TRUE(blobs.Put("ns", "layer").ok());
  nlohmann::json config = image::EmptyImageConfig(*platform::Parse("amd64"));
  config["rootfs"]["diff_ids"] = {image::OciDigest(Digest::Of("diff"))};
  auto img = store.PutImage(
      config, {image::Descriptor{"application/vnd.oci.image.layer.v1.tar",
                                 Digest::Of("layer")}});
  ASSERT_TRUE(img.ok());
  std::string statement = R"({"_type":"https://in-toto.io/Statement/v1"})";
  auto index =
      PutIndexWithAttestations(&store, {{*platform::Parse("amd64"), *img}},
                               {{{kSlsaProvenanceV1, statement}}});
  ASSERT_TRUE(index.ok()) << index.status();
  auto found = ReadAttestations(&store, index->digest);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].predicate_type, kSlsaProvenanceV1);
  EXPECT_EQ((*found)[0].statement, statement);
  EXPECT_EQ((*found)[0].image.hash(), img->digest.hash());
  // The index still gives the platform's image; an export carries both.
  auto got = store.LoadFor(index->digest, *platform::Parse("amd64"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->manifest.digest, img->digest);
  auto platforms = store.Platforms(index->digest);
  ASSERT_TRUE(platforms.ok());
  EXPECT_EQ(platforms->size(), 1u);
  auto manifests = store.Manifests(index->digest);
  ASSERT_TRUE(manifests.ok());
  EXPECT_EQ(manifests->size(), 2u);
  EXPECT_TRUE(store.Load((*manifests)[1].digest).ok());
}

}  // namespace
}  // namespace stagefarm::attest
