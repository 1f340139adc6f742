// A build run stage by stage (RunStage with the results of the stages each
// one needs, then Assemble), as farm workers run it, gives the very image a
// whole Build gives. Runs real containers: needs root, runc and
// /bin/busybox (busybox-static); skipped otherwise.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "blobstore/memory_blob_store.h"
#include "engine/build_engine.h"
#include "executor/runc_executor.h"
#include "gtest/gtest.h"
#include "image/image_archive.h"
#include "snapshot/snapshots.h"

namespace stagefarm::engine {
namespace {

namespace fs = std::filesystem;

constexpr char kDockerfile[] = R"(FROM busybox AS a
RUN echo a > /a
FROM busybox AS b
RUN echo b > /b
FROM a
COPY --from=b /b /b
RUN cat /a /b > /ab
)";

class StageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access("/bin/busybox", X_OK) != 0) {
      GTEST_SKIP() << "needs root and /bin/busybox";
    }
    const char* tmp = getenv("TEST_TMPDIR");
    std::string base =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/stage_test.XXXXXX");
    ASSERT_NE(mkdtemp(base.data()), nullptr);
    dir_ = base;
    std::string rootfs = dir_ + "/busybox";
    fs::create_directories(rootfs + "/bin");
    fs::create_directories(rootfs + "/etc");
    fs::copy_file("/bin/busybox", rootfs + "/bin/busybox");
    for (const char* applet : {"sh", "echo", "cat"}) {
      fs::create_symlink("busybox", rootfs + "/bin/" + applet);
    }
    std::ofstream(rootfs + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n";
    std::ofstream(rootfs + "/etc/group") << "root:x:0:\n";
    fs::create_directories(dir_ + "/scratch");
    fs::create_directories(dir_ + "/context");
    images_ = std::make_unique<image::ImageStore>(&blobs_, "ns",
                                                  dir_ + "/images.json");
    auto busybox = image::ImportImage(images_.get(), rootfs, dir_ + "/scratch");
    ASSERT_TRUE(busybox.ok()) << busybox.status();
    ASSERT_TRUE(images_->Tag("busybox", busybox->digest).ok());
    auto snapshots =
        snapshot::Snapshotter::Open(dir_ + "/worker", &blobs_, "ns");
    ASSERT_TRUE(snapshots.ok()) << snapshots.status();
    snapshots_ = std::move(*snapshots);
    executor::RuncOptions ro;
    ro.state_dir = dir_ + "/runc";
    ro.bundles_dir = dir_ + "/bundles";
    auto executor = executor::RuncExecutor::Create(ro);
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = std::move(*executor);
    EngineOptions eo;
    eo.ns = "ns";
    eo.cache_mounts = dir_ + "/cache-mounts";
    engine_ = std::make_unique<BuildEngine>(
        &blobs_, &blobs_, images_.get(), snapshots_.get(), executor_.get(), eo);
  }
  void TearDown() override {
    engine_.reset();
    executor_.reset();
    snapshots_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  BuildRequest Request() {
    BuildRequest r;
    r.dockerfile = kDockerfile;
    r.dockerfile_name = "Dockerfile";
    r.context_dir = dir_ + "/context";
    r.no_cache = true;  // every step runs, in both ways of building
    r.source_date_epoch = 1700000000;
    return r;
  }

  std::string dir_;
  MemoryBlobStore blobs_;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<snapshot::Snapshotter> snapshots_;
  std::unique_ptr<executor::Executor> executor_;
  std::unique_ptr<BuildEngine> engine_;
};

TEST_F(StageTest, StageByStageEqualsWholeBuild) {
  auto whole = engine_->Build(Request(), nullptr, nullptr);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->steps_run, 4);

  BuildRequest r = Request();
  auto a = engine_->RunStage(r, 0, {}, nullptr, nullptr);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = engine_->RunStage(r, 1, {}, nullptr, nullptr);
  ASSERT_TRUE(b.ok()) << b.status();
  // The last stage needs both: without b's result it is refused.
  auto missing = engine_->RunStage(r, 2, {{0, a->state}}, nullptr, nullptr);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> started;
  auto last = engine_->RunStage(
      r, 2, {{0, a->state}, {1, b->state}},
      [&](const BuildEvent& ev) {
        if (ev.kind == BuildEvent::Kind::kStepStarted) {
          started.push_back(ev.text);
        }
      },
      nullptr);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->steps_run, 2);
  EXPECT_EQ(started.size(), 2u);
  auto image = engine_->Assemble(r, last->state);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, whole->manifest.digest);
  EXPECT_EQ(image->image.diff_ids, whole->image.diff_ids);

  // Images resolved by the caller are used as given.
  BuildRequest pinned = Request();
  pinned.images["busybox"] = image->manifest.digest;  // "busybox" is now ours
  pinned.no_cache = false;
  auto on_ours = engine_->RunStage(pinned, 1, {}, nullptr, nullptr);
  ASSERT_TRUE(on_ours.ok()) << on_ours.status();
  EXPECT_EQ(on_ours->state.layers.size(), image->image.layers.size() + 1);
}

// Two builds running the same step at once (two platforms' builds sharing
// a $BUILDPLATFORM stage do) run it once: the second waits for the first
// and takes its result from the cache.
TEST_F(StageTest, ConcurrentBuildsRunASharedStepOnce) {
  BuildRequest r = Request();
  r.no_cache = false;
  r.dockerfile = "FROM busybox\nRUN sleep 1 && echo shared > /shared\n";
  std::atomic<int> done{0}, cached{0};
  auto count = [&](const BuildEvent& ev) {
    if (ev.kind == BuildEvent::Kind::kStepDone) ++done;
    if (ev.kind == BuildEvent::Kind::kStepCached) ++cached;
  };
  absl::StatusOr<BuildResult> first, second;
  std::thread t1([&] { first = engine_->Build(r, count, nullptr); });
  std::thread t2([&] { second = engine_->Build(r, count, nullptr); });
  t1.join();
  t2.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(done.load(), 1);
  EXPECT_EQ(cached.load(), 1);
  EXPECT_EQ(first->steps_run + second->steps_run, 1);
  EXPECT_EQ(first->image.layers.size(), second->image.layers.size());
  EXPECT_EQ(first->image.layers.back().digest,
            second->image.layers.back().digest);
}

}  // namespace
}  // namespace stagefarm::engine
