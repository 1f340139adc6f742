#include "common/json.h"

#include "gtest/gtest.h"

namespace stagefarm::json {
namespace {

TEST(JsonTest, ValidUtf8ReplacesEachBadByteAsGoDoes) {
  EXPECT_EQ(ValidUtf8("caf\xe9"), "caf\xEF\xBF\xBD");
  // Two Latin-1 bytes: two replacements.
  EXPECT_EQ(ValidUtf8("\xe9\xe8x"), "\xEF\xBF\xBD\xEF\xBF\xBDx");
  // A truncated three-byte sequence: one replacement a byte (Go).
  EXPECT_EQ(ValidUtf8("\xe2\x82x"), "\xEF\xBF\xBD\xEF\xBF\xBDx");
  // Overlong, surrogate and above U+10FFFF are invalid.
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));
  // Valid text is kept as it is.
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3");
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9"));
  EXPECT_FALSE(IsValidUtf8("caf\xe9"));
}

TEST(JsonTest, DumpNeverThrowsOnBytes) {
  nlohmann::json j;
  j["Env"] = {"A=caf\xe9"};
  j["k\xff"] = "v";
  EXPECT_EQ(Dump(j),
            "{\"Env\":[\"A=caf\xEF\xBF\xBD\"],\"k\xEF\xBF\xBD\":\"v\"}");
  EXPECT_EQ(Dump(nlohmann::json("ok"), 2), "\"ok\"");
}

TEST(JsonTest, ParseAndTypedFields) {
  EXPECT_EQ(Parse("{", "manifest").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto j = Parse(R"({"s":"x","n":2,"b":true,"o":{},"a":[],"z":null,
                     "bad":"2","big":18446744073709551615})",
                 "doc");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(*String(*j, "s", "doc"), "x");
  EXPECT_EQ(*Int(*j, "n", "doc"), 2);
  EXPECT_EQ(**OptionalBool(*j, "b", "doc"), true);
  EXPECT_NE(*OptionalObject(*j, "o", "doc"), nullptr);
  EXPECT_NE(*OptionalArray(*j, "a", "doc"), nullptr);
  EXPECT_FALSE(OptionalString(*j, "z", "doc")->has_value());
  EXPECT_EQ(String(*j, "missing", "doc").status().code(),
            absl::StatusCode::kNotFound);
  auto bad = Int(*j, "bad", "doc");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("\"bad\" is a string"),
            std::string::npos);
  EXPECT_EQ(Int(*j, "big", "doc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(String(*j, "n", "doc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OptionalObject(*j, "a", "doc").status().code(),
            absl::StatusCode::kInvalidArgument);
  // Not an object: no members.
  EXPECT_FALSE(OptionalString(nlohmann::json(3), "s", "doc")->has_value());
}

}  // namespace
}  // namespace stagefarm::json
