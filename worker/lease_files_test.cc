#include "worker/lease_files.h"

#include <stdlib.h>

#include <fstream>

#include "common/fs_util.h"
#include "gtest/gtest.h"

namespace stagefarm::worker {
namespace {

TEST(LeaseFilesTest, WhatAProcessHeldIsFoundByTheNextAndForgotten) {
  char tmpl[] = "/tmp/lease-files-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/leases";
  LeaseFiles files(dir);
  EXPECT_TRUE(files.Leftovers().empty());  // no directory yet

  v1::HeldStage a;
  a.set_lease_id("lease-a");
  ASSERT_TRUE(files.Note(a).ok());
  a.set_step(3);
  a.set_instruction("RUN caf\xe9");
  ASSERT_TRUE(files.Note(a).ok());  // the step replaces the note
  v1::HeldStage b;
  b.set_lease_id(std::string("b\0/..", 5));  // any bytes make a file name
  ASSERT_TRUE(files.Note(b).ok());
  // A dying process's partial write is dropped.
  std::ofstream(dir + "/zz") << "\xff\xff\xff";

  std::vector<v1::HeldStage> left = LeaseFiles(dir).Leftovers();
  ASSERT_EQ(left.size(), 2u);
  const v1::HeldStage& found =
      left[0].lease_id() == "lease-a" ? left[0] : left[1];
  EXPECT_EQ(found.step(), 3);
  EXPECT_EQ(found.instruction(), "RUN caf\xe9");
  EXPECT_FALSE(ReadFileToString(dir + "/zz").ok());

  files.Forget("lease-a");
  files.Forget(b.lease_id());
  EXPECT_TRUE(files.Leftovers().empty());
  ASSERT_TRUE(RemoveAll(tmpl).ok());
}

}  // namespace
}  // namespace stagefarm::worker
