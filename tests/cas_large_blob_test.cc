// A 4 GiB blob goes into the real stagefarm-cas over ByteStream and comes
// back out, verified, while the server's peak RSS stays under 300 MB: large
// blobs stream in chunks and never sit whole in memory.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/cas_client.h"
#include "tests/cas_process.h"

namespace stagefarm {
namespace {

constexpr int64_t kSize = 4LL << 30;
constexpr int64_t kMaxRss = 300LL << 20;

// Cheap, non-repeating content (a counter mixed per 8 bytes): fast enough
// that the test measures the server, not the generator.
void Fill(char* buf, size_t n, uint64_t offset) {
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = (offset + i) * 0x9E3779B97F4A7C15ULL;
    std::memcpy(buf + i, &v, 8);
  }
}

TEST(CasLargeBlobTest, FourGiBStreamsInAndOutUnder300MBRss) {
  std::string dir = MakeTempDir("large");
  ASSERT_FALSE(dir.empty());
  auto cas = CasProcess::Start(CasBinaryPath(), dir + "/db");
  ASSERT_TRUE(cas.ok()) << cas.status();
  CasClient client(CasClient::Connect(cas->address()), "big");

  // Hash first (the client must know the digest), then stream.
  std::vector<char> buf(CasClient::kChunkBytes);
  Sha256 hash;
  for (int64_t off = 0; off < kSize; off += static_cast<int64_t>(buf.size())) {
    Fill(buf.data(), buf.size(), static_cast<uint64_t>(off));
    hash.Update(absl::string_view(buf.data(), buf.size()));
  }
  Digest digest = Digest::FromRaw(hash.Final(), kSize);

  int64_t produced = 0;
  auto t0 = std::chrono::steady_clock::now();
  absl::Status s = client.Write(
      digest, [&](char* out, size_t max) -> absl::StatusOr<size_t> {
        size_t n = static_cast<size_t>(
            std::min<int64_t>(kSize - produced, static_cast<int64_t>(max)));
        Fill(out, n, static_cast<uint64_t>(produced));
        produced += static_cast<int64_t>(n);
        return n;
      });
  ASSERT_TRUE(s.ok()) << s;
  double write_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();

  t0 = std::chrono::steady_clock::now();
  Sha256 back;
  int64_t got = 0;
  s = client.Read(digest, [&](absl::string_view chunk) {
    back.Update(chunk);
    got += static_cast<int64_t>(chunk.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  double read_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(Digest::FromRaw(back.Final(), got), digest);

  auto rss = cas->PeakRssBytes();
  ASSERT_TRUE(rss.ok()) << rss.status();
  std::printf("4 GiB: write %.1f s, read %.1f s, server peak RSS %lld MB\n",
              write_s, read_s, static_cast<long long>(*rss >> 20));
  EXPECT_LT(*rss, kMaxRss);
  cas->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stagefarm
