#include "executor/rootless.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace stagefarm::executor {
namespace {

std::string TempFile(const std::string& text) {
  char path[] = "/tmp/sf-subuid-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(SubordinateRangeTest, ByNameOrId) {
  std::string file = TempFile(
      "alice:100000:65536\n"
      "1002:300000:1000\n"
      "bob:x:1\n"
      "carol:400000:0\n");
  EXPECT_EQ(*SubordinateRange(file, "alice", 1001), "100000:65536");
  EXPECT_EQ(*SubordinateRange(file, "dave", 1002), "300000:1000");
  // A malformed or empty range gives none.
  EXPECT_EQ(SubordinateRange(file, "bob", 1003).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SubordinateRange(file, "carol", 1004).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      SubordinateRange("/nonexistent/subuid", "alice", 1001).status().code(),
      absl::StatusCode::kNotFound);
  unlink(file.c_str());
}

}  // namespace
}  // namespace stagefarm::executor
