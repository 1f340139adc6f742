// cas_bench: throughput of a running stagefarm-cas over gRPC.
//   ByteStream write and read of one large blob, BatchUpdateBlobs of many
//   small blobs, FindMissingBlobs of many digests.
// Prints one "name value unit" line per measurement. bench/cas runs it
// against a fresh server beside `openssl speed`.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <iostream>
#include <random>

#include "common/cas_client.h"

namespace stagefarm {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

int Run(const std::string& address, int64_t big_bytes, int small_count,
        int small_bytes, int find_batch, const std::string& instance) {
  CasClient client(CasClient::Connect(address), instance);

  // One 1 MiB block of random bytes, repeated with a per-block counter so
  // the blob does not repeat (the store does not deduplicate chunks, but an
  // honest benchmark should not depend on that).
  std::mt19937_64 rng(42);
  std::string block(CasClient::kChunkBytes, '\0');
  for (size_t i = 0; i < block.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(block.data() + i, &v, 8);
  }
  auto fill = [&](char* out, size_t n, int64_t offset) {
    std::memcpy(out, block.data(), n);
    uint64_t idx = static_cast<uint64_t>(offset);
    std::memcpy(out, &idx, std::min<size_t>(8, n));
  };
  Sha256 hash;
  std::vector<char> buf(CasClient::kChunkBytes);
  for (int64_t off = 0; off < big_bytes;
       off += static_cast<int64_t>(buf.size())) {
    size_t n =
        static_cast<size_t>(std::min<int64_t>(big_bytes - off, buf.size()));
    fill(buf.data(), n, off);
    hash.Update(absl::string_view(buf.data(), n));
  }
  Digest big = Digest::FromRaw(hash.Final(), big_bytes);

  int64_t produced = 0;
  auto t0 = std::chrono::steady_clock::now();
  absl::Status s =
      client.Write(big, [&](char* out, size_t max) -> absl::StatusOr<size_t> {
        size_t n =
            static_cast<size_t>(std::min<int64_t>(big_bytes - produced, max));
        fill(out, n, produced);
        produced += static_cast<int64_t>(n);
        return n;
      });
  double write_s = Seconds(t0);
  if (!s.ok()) {
    std::cerr << "bytestream write: " << s << "\n";
    return 1;
  }
  std::printf("bytestream_write_MBps %.0f\n", big_bytes / write_s / 1e6);

  int64_t got = 0;
  t0 = std::chrono::steady_clock::now();
  s = client.Read(big, [&](absl::string_view chunk) {
    got += static_cast<int64_t>(chunk.size());
    return absl::OkStatus();
  });
  double read_s = Seconds(t0);
  if (!s.ok() || got != big_bytes) {
    std::cerr << "bytestream read: " << s << " (" << got << " bytes)\n";
    return 1;
  }
  std::printf("bytestream_read_MBps %.0f\n", big_bytes / read_s / 1e6);

  // Small blobs, batched up to the server's advertised limit.
  std::vector<std::pair<Digest, std::string>> smalls;
  for (int i = 0; i < small_count; ++i) {
    std::string data(static_cast<size_t>(small_bytes), '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    smalls.emplace_back(Digest::Of(data), std::move(data));
  }
  auto caps = client.GetCapabilities();
  int64_t limit = caps.ok()
                      ? caps->cache_capabilities().max_batch_total_size_bytes()
                      : (4 << 20);
  t0 = std::chrono::steady_clock::now();
  std::vector<std::pair<Digest, std::string>> batch;
  int64_t batch_bytes = 0;
  int failures = 0;
  auto send = [&] {
    auto r = client.BatchUpdate(batch);
    if (!r.ok()) {
      failures += static_cast<int>(batch.size());
    } else {
      for (const auto& st : *r) failures += st.ok() ? 0 : 1;
    }
    batch.clear();
    batch_bytes = 0;
  };
  for (auto& item : smalls) {
    // Leave room for per-blob framing in the request.
    if (batch_bytes + small_bytes + 100 > limit) send();
    batch_bytes += small_bytes + 100;
    batch.push_back(item);
  }
  if (!batch.empty()) send();
  double batch_s = Seconds(t0);
  if (failures > 0) {
    std::cerr << "batch update: " << failures << " failures\n";
    return 1;
  }
  std::printf("batch_update_blobs_per_s %.0f\n", small_count / batch_s);

  std::vector<Digest> digests;
  for (int i = 0; i < small_count; ++i) {
    digests.push_back(i % 2 == 0 ? smalls[i].first
                                 : Digest::Of("absent " + std::to_string(i)));
  }
  // Asked in calls of find_batch digests (the server takes at most
  // 100,000 a call), so the store's size and a call's size vary apart.
  t0 = std::chrono::steady_clock::now();
  size_t missing_count = 0, calls = 0;
  for (size_t i = 0; i < digests.size(); i += static_cast<size_t>(find_batch)) {
    std::vector<Digest> part(
        digests.begin() + static_cast<std::ptrdiff_t>(i),
        digests.begin() +
            static_cast<std::ptrdiff_t>(
                std::min(digests.size(), i + static_cast<size_t>(find_batch))));
    auto missing = client.FindMissing(part);
    if (!missing.ok()) {
      std::cerr << "find missing: " << missing.status().message() << "\n";
      return 1;
    }
    missing_count += missing->size();
    ++calls;
  }
  double find_s = Seconds(t0);
  if (missing_count != static_cast<size_t>(small_count / 2)) {
    std::cerr << "find missing: wrong answer: " << missing_count
              << " missing, expected " << small_count / 2 << "\n";
    return 1;
  }
  std::printf("find_missing_digests_per_s %.0f\n", small_count / find_s);
  std::printf("find_missing_ms_per_call %.2f\n",
              find_s * 1000 / static_cast<double>(calls));
  return 0;
}

}  // namespace
}  // namespace stagefarm

int main(int argc, char** argv) {
  std::string address, instance = "bench";
  int64_t big_bytes = 1LL << 30;
  int small_count = 10000;
  int small_bytes = 1024;
  int find_batch = 10000;
  CLI::App app{"cas_bench: throughput of a stagefarm-cas"};
  app.add_option("--cas", address, "HOST:PORT")->required();
  app.add_option("--instance", instance, "instance name");
  app.add_option("--big-bytes", big_bytes, "size of the streamed blob");
  app.add_option("--small-count", small_count, "number of small blobs");
  app.add_option("--small-bytes", small_bytes, "size of each small blob");
  app.add_option("--find-batch", find_batch,
                 "digests asked in each FindMissingBlobs call")
      ->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  return stagefarm::Run(address, big_bytes, small_count, small_bytes,
                        find_batch, instance);
}
