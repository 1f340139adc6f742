#include "cachekey/cache_key.h"

#include "gtest/gtest.h"

namespace stagefarm::cachekey {
namespace {

TEST(CacheKeyTest, SameFieldsSameKey) {
  std::string a = CacheKeyBuilder().Add("kind", "run").Add("cmd", "x").Finish();
  std::string b = CacheKeyBuilder().Add("kind", "run").Add("cmd", "x").Finish();
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.rfind("sha256:", 0), 0u);
  EXPECT_EQ(a.size(), 7u + 64u);
}

TEST(CacheKeyTest, LengthPrefixesSeparateFields) {
  // Without length prefixes these two would concatenate to the same bytes.
  std::string a = CacheKeyBuilder().Add("a", "bc").Finish();
  std::string b = CacheKeyBuilder().Add("ab", "c").Finish();
  EXPECT_NE(a, b);
  std::string c = CacheKeyBuilder().AddList("env", {"A=1", "B=2"}).Finish();
  std::string d = CacheKeyBuilder().AddList("env", {"A=1B=2"}).Finish();
  std::string e = CacheKeyBuilder().AddList("env", {"A=1", "B=2", ""}).Finish();
  EXPECT_NE(c, d);
  EXPECT_NE(c, e);
}

TEST(CacheKeyTest, OrderAndValuesMatter) {
  EXPECT_NE(CacheKeyBuilder().Add("x", "1").Add("y", "2").Finish(),
            CacheKeyBuilder().Add("y", "2").Add("x", "1").Finish());
  EXPECT_NE(CacheKeyBuilder().Add("x", int64_t{1}).Finish(),
            CacheKeyBuilder().Add("x", int64_t{2}).Finish());
}

TEST(CacheKeyTest, EncodingIsVersionedAndStable) {
  // The exact bytes are a format other machines rely on: pin them.
  CacheKeyBuilder b;
  b.Add("k", "v");
  std::string expected;
  auto put = [&](const std::string& s) {
    expected.append(7, '\0');
    expected.push_back(static_cast<char>(s.size()));
    expected += s;
  };
  put(kCacheKeyVersion);
  put("k");
  put("v");
  EXPECT_EQ(b.encoding(), expected);
}

TEST(CacheKeyTest, PartsNameEachFieldAndChangeWithItsValueOnly) {
  CacheKeyBuilder a, b;
  a.Add("parent", "sha256:1").AddList("args", {"sh", "-c", "make"});
  a.AddList("mount", {"cache"}).AddList("mount", {"bind"});
  b.Add("parent", "sha256:1").AddList("args", {"sh", "-c", "make all"});
  b.AddList("mount", {"cache"}).AddList("mount", {"bind"});
  ASSERT_EQ(a.parts().size(), 4u);
  EXPECT_EQ(a.parts()[0].name, "parent");
  EXPECT_EQ(a.parts()[2].name, "mount");
  EXPECT_EQ(a.parts()[3].name, "mount#2");
  EXPECT_EQ(a.parts()[0].fingerprint.size(), 16u);
  EXPECT_EQ(a.parts()[0], b.parts()[0]);
  EXPECT_NE(a.parts()[1].fingerprint, b.parts()[1].fingerprint);
  EXPECT_EQ(a.parts()[2], b.parts()[2]);
  EXPECT_EQ(a.parts()[3], b.parts()[3]);
  EXPECT_NE(a.parts()[2].fingerprint, a.parts()[3].fingerprint);
  // A fingerprint shows nothing of the value.
  EXPECT_EQ(a.parts()[1].fingerprint.find("make"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::cachekey
