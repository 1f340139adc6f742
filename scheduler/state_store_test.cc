#include "scheduler/state_store.h"

#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"

namespace stagefarm::scheduler {
namespace {

std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/state-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

v1::Event Ev(const std::string& kind) {
  v1::Event e;
  e.set_kind(kind);
  return e;
}

TEST(StateStoreTest, BuildsEventsAndImagesSurviveReopening) {
  std::string dir = TempDir();
  {
    auto store = StateStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::StoredBuild b;
    b.set_build_id("b1");
    std::vector<v1::Event> events = {Ev("queued"), Ev("stage-started")};
    b.set_events(1);
    ASSERT_TRUE((*store)->PutBuild(b, events, 0).ok());
    // Later: one more event, only the new one written.
    b.set_events(2);
    ASSERT_TRUE((*store)->PutBuild(b, events, 1).ok());
    v1::StoredBuild gone;
    gone.set_build_id("b2");
    ASSERT_TRUE((*store)->PutBuild(gone, {Ev("queued")}, 0).ok());
    ASSERT_TRUE((*store)->DropBuild("b2").ok());
    v1::ImageTag tag;
    tag.set_name("app:1");
    ASSERT_TRUE((*store)->PutImage(std::string("inst\0x", 6), tag).ok());
    tag.set_name("app:2");
    ASSERT_TRUE((*store)->PutImage("other", tag).ok());
    ASSERT_TRUE((*store)->DropImage("other", "app:2").ok());
  }
  auto store = StateStore::Open(dir);
  ASSERT_TRUE(store.ok());
  auto contents = (*store)->Load();
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->builds.size(), 1u);
  EXPECT_EQ(contents->builds[0].build.build_id(), "b1");
  ASSERT_EQ(contents->builds[0].events.size(), 2u);
  EXPECT_EQ(contents->builds[0].events[1].kind(), "stage-started");
  ASSERT_EQ(contents->images.size(), 1u);
  EXPECT_EQ(contents->images[0].first, std::string("inst\0x", 6));
  EXPECT_EQ(contents->images[0].second.name(), "app:1");
  EXPECT_FALSE((*store)->failed());
  EXPECT_EQ((*store)->disk_full_errors(), 0);
  std::filesystem::remove_all(dir);
}

TEST(StateStoreTest, UnopenableDirectoryIsUnavailableNamingIt) {
  auto store = StateStore::Open("/proc/no-such-dir/state");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(store.status().message().find("/proc/no-such-dir/state"),
            absl::string_view::npos);
}

TEST(StateStoreTest, RefusedWriteIsResourceExhaustedAndCounted) {
  std::string dir = TempDir();
  auto store = StateStore::Open(dir);
  ASSERT_TRUE(store.ok());
  absl::Status s = (*store)->Refuse();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*store)->disk_full_errors(), 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stagefarm::scheduler
