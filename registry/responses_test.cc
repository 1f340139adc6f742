#include "registry/responses.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/status_code.h"

namespace stagefarm::registry {
namespace {

using testing::CodeOf;
using ::testing::HasSubstr;

std::string Hex(char c) { return std::string(64, c); }

std::string Descriptor(char c, const std::string& size = "10") {
  return absl::StrCat(R"({"mediaType":"m","digest":"sha256:)", Hex(c),
                      R"(","size":)", size, "}");
}

TEST(ErrorBodyTest, FirstEntryOrNothing) {
  auto d = ParseErrorBody(
      R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such tag"}]})");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, "MANIFEST_UNKNOWN: no such tag");
  d = ParseErrorBody(R"({"errors":[{"code":"DENIED","message":null}]})");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, "DENIED");
  for (const char* none : {"", "<html>", "[]", "{}", R"({"errors":[]})"}) {
    d = ParseErrorBody(none);
    ASSERT_TRUE(d.ok()) << none;
    EXPECT_EQ(*d, "") << none;
  }
}

TEST(ErrorBodyTest, WrongTypesAreNamed) {
  auto d = ParseErrorBody(R"({"errors":[{"code":404,"message":null}]})");
  EXPECT_EQ(CodeOf(d), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("field \"code\" is a number, not a string"));
  d = ParseErrorBody(R"({"errors":[{"code":"X","message":{}}]})");
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("field \"message\" is a object"));
  d = ParseErrorBody(R"({"errors":"boom"})");
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("field \"errors\" is a string, not a array"));
}

TEST(TokenAnswerTest, TokenThenAccessToken) {
  auto t = ParseTokenAnswer(R"({"token":"a","access_token":"b"})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "a");
  t = ParseTokenAnswer(R"({"token":"","access_token":"b"})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "b");
  t = ParseTokenAnswer(R"({"token":null})");
  EXPECT_EQ(CodeOf(t), absl::StatusCode::kUnauthenticated);
  t = ParseTokenAnswer(R"({"token":5})");
  EXPECT_EQ(CodeOf(t), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("field \"token\" is a number, not a string"));
  t = ParseTokenAnswer("not json");
  EXPECT_EQ(CodeOf(t), absl::StatusCode::kInvalidArgument);
}

TEST(ManifestAnswerTest, ImageAndIndex) {
  std::string image = absl::StrCat(
      R"({"schemaVersion":2,"config":)", Descriptor('c'), R"(,"layers":[)",
      Descriptor('1'), ",", Descriptor('2', "0"), "]}");
  auto m = ParseManifestAnswer(image, image::kMediaTypeDockerManifest);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->is_index);
  EXPECT_EQ(m->media_type, image::kMediaTypeDockerManifest);
  EXPECT_EQ(m->config.digest.hash(), Hex('c'));
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[1].digest.size(), 0);

  std::string index = absl::StrCat(
      R"({"schemaVersion":2,"manifests":[)", Descriptor('a'), ",",
      R"({"digest":"sha256:)", Hex('b'),
      R"(","size":3,"platform":{"os":"linux","architecture":"arm64"}}]})");
  // The Content-Type says index; parameters after ';' are ignored.
  m = ParseManifestAnswer(
      index, absl::StrCat(image::kMediaTypeIndex, "; charset=utf-8"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->is_index);
  ASSERT_EQ(m->platforms.size(), 1u);  // the first has no platform
  EXPECT_EQ(m->platforms[0].platform.String(), "linux/arm64");
}

TEST(ManifestAnswerTest, OddTypesAreNamed) {
  struct Case {
    std::string text;
    absl::StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {R"({"schemaVersion":"2"})", absl::StatusCode::kInvalidArgument,
       "manifest: field \"schemaVersion\" is a string, not a integer"},
      {R"({"schemaVersion":1})", absl::StatusCode::kUnimplemented, "schema 1"},
      {R"({"schemaVersion":2,"mediaType":[]})",
       absl::StatusCode::kInvalidArgument,
       "field \"mediaType\" is a array, not a string"},
      {R"({"schemaVersion":2,"layers":[]})", absl::StatusCode::kInvalidArgument,
       "manifest: no config"},
      {absl::StrCat(R"({"config":)", Descriptor('c'), "}"),
       absl::StatusCode::kInvalidArgument, "no layers array"},
      {absl::StrCat(R"({"config":)", Descriptor('c', "-3"), R"(,"layers":[]})"),
       absl::StatusCode::kInvalidArgument, "field \"size\" is negative"},
      {absl::StrCat(R"({"config":)", Descriptor('c', "1e3"),
                    R"(,"layers":[]})"),
       absl::StatusCode::kInvalidArgument,
       "field \"size\" is a number, not a integer"},
      {absl::StrCat(R"({"config":)", Descriptor('c', "18446744073709551615"),
                    R"(,"layers":[]})"),
       absl::StatusCode::kInvalidArgument, "out of range"},
      {absl::StrCat(R"({"config":)", Descriptor('c'), R"(,"layers":[null]})"),
       absl::StatusCode::kInvalidArgument,
       "manifest.layers[0] is a null, not an object"},
      {R"({"mediaType":"application/vnd.oci.image.index.v1+json"})",
       absl::StatusCode::kInvalidArgument, "no manifests array"},
      {"[1]", absl::StatusCode::kInvalidArgument, "not an object"},
  };
  for (const Case& c : cases) {
    auto m = ParseManifestAnswer(c.text, "");
    EXPECT_EQ(CodeOf(m), c.code) << c.text << ": " << m.status();
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.message))
        << c.text;
  }
}

}  // namespace
}  // namespace stagefarm::registry
