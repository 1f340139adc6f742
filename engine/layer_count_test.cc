// Which steps make layers, and how many an image may have: a RUN that
// changed nothing makes none (BuildKit's rule; the engine's mount stubs
// do not count as a change), 127 layers build, and the step that would
// make a 128th is refused before it runs with Docker's "max depth
// exceeded". Runs real containers: needs root, runc and /bin/busybox
// (busybox-static); skipped otherwise.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/build_engine.h"
#include "engine/test_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "image/oci.h"

namespace stagefarm::engine {
namespace {

using ::testing::HasSubstr;

using LayerCountTest = BusyboxEngineTest;

// The last `n` history entries' empty_layer flags.
std::vector<bool> LastEmptyLayers(const ImageState& image, size_t n) {
  std::vector<bool> out;
  const auto& history = image.config["history"];
  for (size_t i = history.size() - n; i < history.size(); ++i) {
    out.push_back(history[i].value("empty_layer", false));
  }
  return out;
}

// "FROM busybox AS deep" and `runs` steps each adding a file: 1 + runs layers.
std::string Deep(int runs) {
  std::string text = "FROM busybox AS deep\n";
  for (int i = 1; i <= runs; ++i) {
    absl::StrAppend(&text, "RUN echo ", i, " > /f", i, "\n");
  }
  return text;
}

TEST_F(LayerCountTest, ARunThatChangedNothingMakesNoLayer) {
  BuildRequest r = Request(
      "FROM busybox\n"
      "RUN echo nothing\n"  // only /etc/hosts and resolv.conf mounted
      "RUN touch /etc/made && rm /etc/made\n"
      "RUN echo a > /a\n"
      "RUN --network=none true\n");
  auto built = engine_->Build(r, nullptr, nullptr);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->steps_run, 4);
  EXPECT_EQ(built->image.layers.size(), 2u);  // busybox's and /a's
  EXPECT_EQ(built->image.diff_ids.size(), 2u);
  EXPECT_EQ(built->image.config["rootfs"]["diff_ids"].size(), 2u);
  EXPECT_EQ(LastEmptyLayers(built->image, 4),
            (std::vector<bool>{true, true, false, true}));

  // From the cache: the same, no layer for the same steps.
  auto again = engine_->Build(r, nullptr, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->steps_cached, 4);
  EXPECT_EQ(again->steps_run, 0);
  EXPECT_EQ(again->manifest.digest, built->manifest.digest);
  EXPECT_EQ(again->image.layers.size(), 2u);
  EXPECT_EQ(LastEmptyLayers(again->image, 4),
            (std::vector<bool>{true, true, false, true}));
}

TEST_F(LayerCountTest, ADirectoryChangedOnlyInModeIsAChange) {
  auto built = engine_->Build(Request("FROM busybox\nRUN chmod 700 /etc\n"),
                              nullptr, nullptr);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->image.layers.size(), 2u);
  EXPECT_EQ(LastEmptyLayers(built->image, 1), std::vector<bool>{false});
}

TEST_F(LayerCountTest, MostLayersBuildAndOneMoreIsRefusedBeforeItRuns) {
  // busybox's layer and 126 more: 127, each RUN over all below it; a
  // second stage views all 127 (COPY --from).
  const int runs = image::kMaxImageLayers - 1;
  BuildRequest r =
      Request(Deep(runs) + "FROM busybox\nCOPY --from=deep / /all\n");
  auto built = engine_->Build(r, nullptr, nullptr);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->steps_run, runs + 1);
  BuildRequest first = r;
  first.plan_options.target = "deep";
  auto deep = engine_->Build(first, nullptr, nullptr);
  ASSERT_TRUE(deep.ok()) << deep.status();
  EXPECT_EQ(deep->image.layers.size(),
            static_cast<size_t>(image::kMaxImageLayers));

  // 130 layers' worth: the step at line runs + 2 would make the 128th.
  std::vector<std::string> started;
  auto refused = engine_->Build(
      Request(Deep(runs + 3)),
      [&](const BuildEvent& ev) {
        if (ev.kind == BuildEvent::Kind::kStepStarted) {
          started.push_back(ev.text);
        }
      },
      nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(
      refused.status().message(),
      HasSubstr(absl::StrCat("Dockerfile:", runs + 2, ": max depth exceeded")));
  EXPECT_THAT(started, ::testing::IsEmpty());  // the rest came from the cache
}

}  // namespace
}  // namespace stagefarm::engine
