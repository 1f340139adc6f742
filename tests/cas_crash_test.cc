// Crash safety of the real stagefarm-cas: kill -9 while many clients upload
// concurrently, restart on the same data, and check that every blob the
// store reports is whole and matches its digest, none is half there, and
// the store keeps working. Three kill/restart rounds.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/cas_client.h"
#include "tests/cas_process.h"

namespace stagefarm {
namespace {

// Deterministic content for (seed, size), produced in chunks.
class PatternSource {
 public:
  PatternSource(uint64_t seed, int64_t size) : rng_(seed), left_(size) {}
  absl::StatusOr<size_t> operator()(char* buf, size_t max) {
    size_t n = static_cast<size_t>(
        std::min<int64_t>(left_, static_cast<int64_t>(max)));
    for (size_t i = 0; i < n; i += 8) {
      uint64_t v = rng_();
      std::memcpy(buf + i, &v, std::min<size_t>(8, n - i));
    }
    left_ -= static_cast<int64_t>(n);
    return n;
  }

 private:
  std::mt19937_64 rng_;
  int64_t left_;
};

Digest DigestOf(uint64_t seed, int64_t size) {
  PatternSource source(seed, size);
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  while (true) {
    size_t n = *source(buf.data(), buf.size());
    if (n == 0) break;
    hash.Update(absl::string_view(buf.data(), n));
  }
  return Digest::FromRaw(hash.Final(), size);
}

TEST(CasCrashTest, KillDuringConcurrentUploadsLosesNothingVisible) {
  std::string dir = MakeTempDir("crash");
  ASSERT_FALSE(dir.empty());
  std::vector<Digest> attempted;
  absl::Mutex attempted_mu;
  uint64_t next_seed = 1;
  int total_ok = 0;

  for (int round = 0; round < 3; ++round) {
    // Blobs from 2 MiB up bypass the write-ahead log, so both write paths
    // are killed mid-flight.
    auto cas = CasProcess::Start(CasBinaryPath(), dir + "/db",
                                 {"--wal-bypass-bytes=2097152"});
    ASSERT_TRUE(cas.ok()) << cas.status();

    // Everything the store says it has from earlier rounds reads back whole.
    {
      CasClient client(CasClient::Connect(cas->address()), "crash");
      std::vector<Digest> snapshot;
      {
        absl::MutexLock lock(&attempted_mu);
        snapshot = attempted;
      }
      auto missing = client.FindMissing(snapshot);
      ASSERT_TRUE(missing.ok()) << missing.status();
      absl::flat_hash_set<Digest> missing_set(missing->begin(), missing->end());
      int present = 0;
      for (const Digest& d : snapshot) {
        if (missing_set.contains(d)) continue;
        ++present;
        Sha256 hash;
        int64_t size = 0;
        absl::Status s = client.Read(d, [&](absl::string_view chunk) {
          hash.Update(chunk);
          size += static_cast<int64_t>(chunk.size());
          return absl::OkStatus();
        });
        ASSERT_TRUE(s.ok())
            << "round " << round << " " << d.ToString() << ": " << s;
        ASSERT_EQ(Digest::FromRaw(hash.Final(), size), d) << "half a blob";
      }
      if (round > 0) {
        EXPECT_GT(present, 0) << "round " << round;
      }
    }

    // 12 clients upload blobs of 64 KiB .. 6 MiB until the kill.
    std::atomic<bool> stop{false};
    std::atomic<int> ok_uploads{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 12; ++c) {
      uint64_t base_seed = next_seed + static_cast<uint64_t>(c) * 100000;
      clients.emplace_back([&, c, base_seed] {
        CasClient client(CasClient::Connect(cas->address()), "crash");
        std::mt19937 sizes(static_cast<uint32_t>(base_seed));
        for (uint64_t i = 0; !stop; ++i) {
          uint64_t seed = base_seed + i;
          int64_t size = (64 << 10) + static_cast<int64_t>(sizes() % (6 << 20));
          Digest d = DigestOf(seed, size);
          {
            absl::MutexLock lock(&attempted_mu);
            attempted.push_back(d);
          }
          PatternSource source(seed, size);
          if (c % 3 == 0 && size < (1 << 20)) {
            // Some clients use batches for small blobs.
            std::string data(static_cast<size_t>(size), '\0');
            (void)source(data.data(), data.size());
            auto r = client.BatchUpdate({{d, data}});
            if (r.ok() && (*r)[0].ok()) ++ok_uploads;
          } else if (client.Write(d, std::ref(source), 0).ok()) {
            ++ok_uploads;
          }
        }
      });
    }
    // Let uploads run, then kill the server hard mid-stream.
    while (ok_uploads < 20 * (round + 1)) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cas->Kill9();
    stop = true;
    for (auto& t : clients) t.join();
    total_ok += ok_uploads;
    next_seed += 10'000'000;
  }

  // Final check after the last kill: every upload that was acknowledged is
  // present and whole.
  auto cas = CasProcess::Start(CasBinaryPath(), dir + "/db");
  ASSERT_TRUE(cas.ok()) << cas.status();
  CasClient client(CasClient::Connect(cas->address()), "crash");
  auto missing = client.FindMissing(attempted);
  ASSERT_TRUE(missing.ok());
  int present = static_cast<int>(attempted.size() - missing->size());
  EXPECT_GE(present, total_ok) << "an acknowledged upload was lost";
  for (const Digest& d : attempted) {
    if (std::find(missing->begin(), missing->end(), d) != missing->end())
      continue;
    auto data = client.ReadString(d);
    ASSERT_TRUE(data.ok()) << data.status();
    ASSERT_EQ(Digest::Of(*data), d);
  }
  // And the store still takes writes.
  ASSERT_TRUE(client.WriteString("after the crashes").ok());
  EXPECT_EQ(*client.ReadString(Digest::Of("after the crashes")),
            "after the crashes");
  std::printf(
      "attempted %zu uploads, %d acknowledged, %d present after 3 kill -9\n",
      attempted.size(), total_ok, present);
  cas->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stagefarm
