#include "common/byte_size.h"

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/byte_size_flag.h"
#include "gtest/gtest.h"

namespace stagefarm {
namespace {

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kTiB = int64_t{1} << 40;
constexpr int64_t kPiB = int64_t{1} << 50;

// go-units' RAMInBytes cases (what `docker run --memory` takes).
TEST(ByteSizeTest, TakesDockersUnits) {
  struct Case {
    const char* text;
    int64_t bytes;
  };
  for (const Case& c : std::vector<Case>{
           {"32", 32},
           {"32b", 32},
           {"32B", 32},
           {"32k", 32 * kKiB},
           {"32K", 32 * kKiB},
           {"32kb", 32 * kKiB},
           {"32Kb", 32 * kKiB},
           {"32Kib", 32 * kKiB},
           {"32KIB", 32 * kKiB},
           {"32Mb", 32 * kMiB},
           {"32Gb", 32 * kGiB},
           {"32Tb", 32 * kTiB},
           {"32Pb", 32 * kPiB},
           {"32PB", 32 * kPiB},
           {"32P", 32 * kPiB},
           {"32.3", 32},
           {"32.3 mb", static_cast<int64_t>(32.3 * kMiB)},
           {"0.3MB", static_cast<int64_t>(0.3 * kMiB)},
           {"256m", 256 * kMiB},
           {"1g", kGiB},
           {"512k", 512 * kKiB},
           {"0", 0},
           {"9223372036854775807", INT64_MAX},
       }) {
    absl::StatusOr<int64_t> n = ParseByteSize(c.text);
    ASSERT_TRUE(n.ok()) << c.text << ": " << n.status();
    EXPECT_EQ(*n, c.bytes) << c.text;
  }
}

TEST(ByteSizeTest, RefusesWhatDockerRefuses) {
  for (const char* text :
       {"", "hello", "-32", "-32b", "32 mb ", "32m b", "32bm", "32x", "m", ".",
        "1..2", "32kk", "1e3", "0x10", " 32"}) {
    absl::StatusOr<int64_t> n = ParseByteSize(text);
    ASSERT_FALSE(n.ok()) << text << " gave " << *n;
    EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(n.status().message().find("invalid size"), std::string::npos);
  }
  absl::StatusOr<int64_t> n = ParseByteSize("256x");
  EXPECT_EQ(n.status().message(),
            "invalid size \"256x\": unknown unit \"x\" (b, k, m, g, t or p) "
            "(a number of bytes, or with a unit: 512k, 256m, 1g)");
}

TEST(ByteSizeTest, TooLargeIsOutOfRange) {
  for (const char* text : {"9223372036854775808", "8192p", "8192.5p",
                           "99999999999999999999999999"}) {
    EXPECT_EQ(ParseByteSize(text).status().code(),
              absl::StatusCode::kOutOfRange)
        << text;
  }
  EXPECT_EQ(*ParseByteSize("8191p"), 8191 * kPiB);
}

TEST(ByteSizeTest, Formats) {
  EXPECT_EQ(FormatBinaryBytes(300), "300 B");
  EXPECT_EQ(FormatBinaryBytes(256 * kMiB), "256 MiB");
  EXPECT_EQ(FormatBinaryBytes(kGiB + kGiB / 2), "1.5 GiB");
  EXPECT_EQ(FormatBinaryBytes(64 * kKiB), "64 KiB");
}

// The flag form: the value in bytes, or an error naming the flag.
TEST(ByteSizeFlagTest, ParsesUnitsAndNamesTheFlagOnError) {
  CLI::App app;
  int64_t memory = 0;
  AddByteSizeOption(&app, "--memory", &memory, "memory")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.parse(std::vector<std::string>{"256m", "--memory"});
  EXPECT_EQ(memory, 256 * kMiB);

  CLI::App bad;
  AddByteSizeOption(&bad, "--memory", &memory, "memory");
  try {
    bad.parse(std::vector<std::string>{"256x", "--memory"});
    ADD_FAILURE() << "256x was taken";
  } catch (const CLI::ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find("--memory"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid size \"256x\""),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace stagefarm
