// For the engine's tests that run real containers: a BuildEngine over a
// memory blob store, real snapshots and runc, with a minimal busybox image
// tagged "busybox" (one layer: /bin/busybox and sh, echo, cat, true, touch,
// rm; /etc/passwd and /etc/group). Needs root, runc and /bin/busybox
// (busybox-static); a test is skipped otherwise.
#ifndef STAGEFARM_ENGINE_TEST_ENGINE_H_
#define STAGEFARM_ENGINE_TEST_ENGINE_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "blobstore/memory_blob_store.h"
#include "engine/build_engine.h"
#include "executor/runc_executor.h"
#include "gtest/gtest.h"
#include "image/image_archive.h"
#include "snapshot/snapshots.h"

namespace stagefarm::engine {

class BusyboxEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    if (geteuid() != 0 || access("/bin/busybox", X_OK) != 0) {
      GTEST_SKIP() << "needs root and /bin/busybox";
    }
    const char* tmp = getenv("TEST_TMPDIR");
    std::string base =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/engine_test.XXXXXX");
    ASSERT_NE(mkdtemp(base.data()), nullptr);
    dir_ = base;
    std::string rootfs = dir_ + "/busybox";
    fs::create_directories(rootfs + "/bin");
    fs::create_directories(rootfs + "/etc");
    fs::copy_file("/bin/busybox", rootfs + "/bin/busybox");
    for (const char* applet : {"sh", "echo", "cat", "true", "touch", "rm"}) {
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
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A request for `dockerfile` over an empty context, named "Dockerfile".
  BuildRequest Request(std::string dockerfile) {
    BuildRequest r;
    r.dockerfile = std::move(dockerfile);
    r.dockerfile_name = "Dockerfile";
    r.context_dir = dir_ + "/context";
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

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_TEST_ENGINE_H_
