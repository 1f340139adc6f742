#include "common/cas_client.h"

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/resource_name.h"
#include "common/status_macros.h"

namespace stagefarm {

std::string NewUuid() {
  uint8_t b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    // Fall back to a weaker source; uniqueness, not secrecy, matters here.
    for (auto& x : b) x = static_cast<uint8_t>(std::rand());
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return absl::StrFormat(
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
      b[12], b[13], b[14], b[15]);
}

namespace {

constexpr auto kDownFor = std::chrono::seconds(3);

int64_t NowTicks() {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

// A stable 64-bit score of (shard, blob): FNV-1a over both, then
// splitmix64's finalizer so that nearby inputs spread evenly.
uint64_t Score(const std::string& shard, const Digest& digest) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  };
  mix(shard.data(), shard.size());
  mix("\0", 1);
  mix(digest.hash().data(), digest.hash().size());
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

// The blobs an action result points at (outputs, trees, logs).
std::vector<Digest> Referenced(const reapi::ActionResult& r) {
  std::vector<Digest> out;
  auto add = [&out](const reapi::Digest& p) {
    absl::StatusOr<Digest> d = Digest::FromProto(p, "digest");
    if (d.ok() && d->size() > 0) out.push_back(*d);
  };
  for (const auto& f : r.output_files()) add(f.digest());
  for (const auto& d : r.output_directories()) add(d.tree_digest());
  if (r.has_stdout_digest()) add(r.stdout_digest());
  if (r.has_stderr_digest()) add(r.stderr_digest());
  return out;
}

bool TryNextReplica(const absl::Status& s) {
  return absl::IsNotFound(s) || absl::IsUnavailable(s) ||
         absl::IsDeadlineExceeded(s);
}

}  // namespace

CasTarget CasClient::Connect(const std::string& address) {
  CasTarget t;
  for (absl::string_view a : absl::StrSplit(address, ',', absl::SkipEmpty())) {
    std::string addr(absl::StripAsciiWhitespace(a));
    if (addr.empty()) continue;
    t.addresses.push_back(addr);
    t.channels.push_back(FarmChannel(addr));
  }
  if (const char* r = getenv("STAGEFARM_CAS_REPLICAS"); r != nullptr) {
    int n = 1;
    if (absl::SimpleAtoi(r, &n)) t.replicas = n;
  }
  t.replicas =
      std::clamp<int>(t.replicas, 1, std::max<int>(1, t.addresses.size()));
  return t;
}

void CasClient::AddShard(const std::string& address,
                         const std::shared_ptr<grpc::Channel>& channel) {
  Shard s;
  s.address = address;
  s.cas = reapi::ContentAddressableStorage::NewStub(channel);
  s.ac = reapi::ActionCache::NewStub(channel);
  s.capabilities = reapi::Capabilities::NewStub(channel);
  s.bytestream = google::bytestream::ByteStream::NewStub(channel);
  s.admin = v1::CasAdmin::NewStub(channel);
  s.down_until = std::make_unique<std::atomic<int64_t>>(0);
  s.channel = channel;
  shards_.push_back(std::move(s));
}

CasClient::CasClient(std::shared_ptr<grpc::Channel> channel,
                     std::string instance_name)
    : instance_name_(std::move(instance_name)) {
  AddShard("", channel);
}

CasClient::CasClient(const CasTarget& target, std::string instance_name)
    : instance_name_(std::move(instance_name)), replicas_(target.replicas) {
  for (size_t i = 0; i < target.channels.size(); ++i) {
    AddShard(target.addresses[i], target.channels[i]);
  }
  if (shards_.empty()) AddShard("", FarmChannel(""));
}

std::vector<size_t> CasClient::ShardsFor(const Digest& digest) const {
  if (shards_.size() == 1) return {0};
  std::vector<std::pair<uint64_t, size_t>> scored;
  for (size_t i = 0; i < shards_.size(); ++i) {
    scored.emplace_back(Score(shards_[i].address, digest), i);
  }
  std::sort(scored.rbegin(), scored.rend());
  std::vector<size_t> out;
  for (int r = 0; r < replicas_; ++r) out.push_back(scored[r].second);
  // Shards seen failing go last (still tried: they may be back).
  int64_t now = NowTicks();
  std::stable_partition(out.begin(), out.end(), [&](size_t i) {
    return shards_[i].down_until->load() <= now;
  });
  return out;
}

bool CasClient::Reachable(size_t shard) {
  grpc::Channel* channel = shards_[shard].channel.get();
  if (channel->GetState(true) == GRPC_CHANNEL_READY) return true;
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(2));
}

void CasClient::Note(size_t shard, const absl::Status& status) {
  if (shards_.size() == 1) return;
  auto until = std::chrono::steady_clock::now() + kDownFor;
  shards_[shard].down_until->store(
      absl::IsUnavailable(status) ? until.time_since_epoch().count() : 0);
}

absl::Status CasClient::ShardError(size_t shard,
                                   const absl::Status& status) const {
  if (shards_.size() == 1 || status.ok()) return status;
  return absl::Status(
      status.code(),
      absl::StrCat("CAS shard ", shards_[shard].address, " (", shard + 1,
                   " of ", shards_.size(), "): ", status.message()));
}

absl::StatusOr<std::vector<Digest>> CasClient::FindMissing(
    const std::vector<Digest>& digests) {
  // Each shard is asked about the blobs it should hold.
  std::map<size_t, std::vector<size_t>> asks;  // shard -> digest indexes
  std::vector<std::vector<size_t>> owners(digests.size());
  for (size_t i = 0; i < digests.size(); ++i) {
    owners[i] = ShardsFor(digests[i]);
    for (size_t s : owners[i]) asks[s].push_back(i);
  }
  std::map<size_t, absl::Status> failed;
  std::vector<bool> missing(digests.size(), false);
  for (const auto& [shard, indexes] : asks) {
    // A server takes a bounded number of digests a request.
    for (size_t from = 0; from < indexes.size(); from += kFindMissingBatch) {
      const size_t to = std::min(indexes.size(), from + kFindMissingBatch);
      reapi::FindMissingBlobsRequest request;
      request.set_instance_name(instance_name_);
      for (size_t k = from; k < to; ++k) {
        digests[indexes[k]].ToProto(request.add_blob_digests());
      }
      reapi::FindMissingBlobsResponse response;
      grpc::ClientContext context;
      absl::Status s = FromGrpcStatus(
          shards_[shard].cas->FindMissingBlobs(&context, request, &response));
      Note(shard, s);
      if (!s.ok()) {
        failed[shard] = s;
        break;
      }
      std::set<Digest> absent;
      for (const auto& p : response.missing_blob_digests()) {
        ASSIGN_OR_RETURN(Digest d,
                         Digest::FromProto(p, "missing_blob_digests"));
        absent.insert(d);
      }
      for (size_t k = from; k < to; ++k) {
        if (absent.count(digests[indexes[k]])) missing[indexes[k]] = true;
      }
    }
  }
  std::vector<Digest> out;
  for (size_t i = 0; i < digests.size(); ++i) {
    bool answered = false;
    for (size_t s : owners[i]) answered = answered || !failed.count(s);
    if (!answered) {
      size_t s = owners[i][0];
      return ShardError(s, failed[s]);
    }
    if (missing[i]) out.push_back(digests[i]);
  }
  return out;
}

absl::StatusOr<std::vector<absl::Status>> CasClient::BatchUpdate(
    const std::vector<std::pair<Digest, std::string>>& blobs) {
  std::map<size_t, std::vector<size_t>> sends;  // shard -> blob indexes
  for (size_t i = 0; i < blobs.size(); ++i) {
    for (size_t s : ShardsFor(blobs[i].first)) sends[s].push_back(i);
  }
  // Per blob: OK once a shard took it, unless another one refused it.
  std::vector<absl::Status> out(blobs.size(),
                                absl::UnavailableError("no shard took it"));
  std::vector<bool> taken(blobs.size(), false);
  for (const auto& [shard, indexes] : sends) {
    reapi::BatchUpdateBlobsRequest request;
    request.set_instance_name(instance_name_);
    for (size_t i : indexes) {
      auto* r = request.add_requests();
      blobs[i].first.ToProto(r->mutable_digest());
      r->set_data(blobs[i].second);
    }
    reapi::BatchUpdateBlobsResponse response;
    grpc::ClientContext context;
    absl::Status s = FromGrpcStatus(
        shards_[shard].cas->BatchUpdateBlobs(&context, request, &response));
    Note(shard, s);
    if (!s.ok() && shards_.size() == 1) return s;
    if (s.ok() &&
        response.responses_size() != static_cast<int>(indexes.size())) {
      return absl::InternalError("BatchUpdateBlobs: wrong number of responses");
    }
    for (size_t k = 0; k < indexes.size(); ++k) {
      size_t i = indexes[k];
      absl::Status one =
          s.ok()
              ? FromRpcStatus(response.responses(static_cast<int>(k)).status())
              : ShardError(shard, s);
      if (one.ok()) {
        if (!taken[i]) out[i] = absl::OkStatus();
        taken[i] = true;
      } else if (!absl::IsUnavailable(one) || !taken[i]) {
        out[i] = one;
        taken[i] = taken[i] && absl::IsUnavailable(one);
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<Digest, absl::StatusOr<std::string>>>>
CasClient::BatchRead(const std::vector<Digest>& digests) {
  std::vector<absl::StatusOr<std::string>> got(digests.size(),
                                               absl::NotFoundError("not read"));
  std::vector<std::vector<size_t>> owners(digests.size());
  std::vector<size_t> pending;
  for (size_t i = 0; i < digests.size(); ++i) {
    owners[i] = ShardsFor(digests[i]);
    pending.push_back(i);
  }
  for (int r = 0; r < replicas_ && !pending.empty(); ++r) {
    std::map<size_t, std::vector<size_t>> asks;
    for (size_t i : pending) {
      if (r < static_cast<int>(owners[i].size()))
        asks[owners[i][r]].push_back(i);
    }
    std::vector<size_t> again;
    for (const auto& [shard, indexes] : asks) {
      reapi::BatchReadBlobsRequest request;
      request.set_instance_name(instance_name_);
      for (size_t i : indexes) digests[i].ToProto(request.add_digests());
      reapi::BatchReadBlobsResponse response;
      grpc::ClientContext context;
      absl::Status s = FromGrpcStatus(
          shards_[shard].cas->BatchReadBlobs(&context, request, &response));
      Note(shard, s);
      if (!s.ok()) {
        if (shards_.size() == 1) return s;
        for (size_t i : indexes) {
          got[i] = ShardError(shard, s);
          again.push_back(i);
        }
        continue;
      }
      std::map<Digest, absl::StatusOr<std::string>> answers;
      for (auto& resp : *response.mutable_responses()) {
        ASSIGN_OR_RETURN(Digest d,
                         Digest::FromProto(resp.digest(), "responses.digest"));
        absl::Status one = FromRpcStatus(resp.status());
        if (one.ok()) {
          answers.emplace(d, std::move(*resp.mutable_data()));
        } else {
          answers.emplace(d, one);
        }
      }
      for (size_t i : indexes) {
        auto it = answers.find(digests[i]);
        got[i] = it == answers.end()
                     ? absl::InternalError("BatchReadBlobs: no answer")
                     : it->second;
        if (!got[i].ok() && TryNextReplica(got[i].status())) again.push_back(i);
      }
    }
    pending = std::move(again);
  }
  std::vector<std::pair<Digest, absl::StatusOr<std::string>>> out;
  for (size_t i = 0; i < digests.size(); ++i) {
    out.emplace_back(digests[i], std::move(got[i]));
  }
  return out;
}

absl::Status CasClient::Write(const Digest& digest, const Source& source,
                              int retries) {
  std::vector<size_t> owners = ShardsFor(digest);
  if (owners.size() == 1) return WriteTo(owners[0], digest, source, retries);
  // The source cannot rewind: the blob goes to the first replica that is
  // reachable now, which then passes it on to the others.
  absl::Status last;
  for (size_t shard : owners) {
    if (!Reachable(shard)) {
      last = ShardError(shard, absl::UnavailableError("unreachable"));
      Note(shard, absl::UnavailableError("unreachable"));
      continue;
    }
    last = WriteTo(shard, digest, source, retries);
    Note(shard, last);
    if (last.ok()) return Replicate(digest);
    return ShardError(shard, last);
  }
  return last;
}

absl::Status CasClient::Replicate(const Digest& digest) {
  std::vector<size_t> owners = ShardsFor(digest);
  if (owners.size() < 2) return absl::OkStatus();
  std::vector<size_t> have, lack;
  for (size_t shard : owners) {
    reapi::FindMissingBlobsRequest request;
    request.set_instance_name(instance_name_);
    digest.ToProto(request.add_blob_digests());
    reapi::FindMissingBlobsResponse response;
    grpc::ClientContext context;
    absl::Status s = FromGrpcStatus(
        shards_[shard].cas->FindMissingBlobs(&context, request, &response));
    Note(shard, s);
    if (!s.ok()) continue;  // down: it catches up on a later write
    (response.missing_blob_digests_size() == 0 ? have : lack).push_back(shard);
  }
  if (have.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "no CAS shard holds ", digest.ToString(), " after writing it"));
  }
  for (size_t to : lack) {
    // Stream from a holder into the other shard, a chunk at a time.
    grpc::ClientContext context;
    google::bytestream::ReadRequest request;
    request.set_resource_name(MakeReadResourceName(instance_name_, digest));
    auto reader = shards_[have[0]].bytestream->Read(&context, request);
    google::bytestream::ReadResponse response;
    std::string pending;
    size_t pos = 0;
    Source from = [&](char* buf, size_t max) -> absl::StatusOr<size_t> {
      while (pos == pending.size()) {
        if (!reader->Read(&response)) {
          RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
          return 0;
        }
        pending = std::move(*response.mutable_data());
        pos = 0;
      }
      size_t n = std::min(max, pending.size() - pos);
      std::memcpy(buf, pending.data() + pos, n);
      pos += n;
      return n;
    };
    absl::Status s = WriteTo(to, digest, from, 0);
    if (!s.ok()) context.TryCancel();
    Note(to, s);
    if (!s.ok() && !absl::IsUnavailable(s)) return ShardError(to, s);
  }
  return absl::OkStatus();
}

absl::Status CasClient::WriteTo(size_t shard, const Digest& digest,
                                const Source& source, int retries) {
  google::bytestream::ByteStream::Stub* bytestream =
      shards_[shard].bytestream.get();

  std::string resource =
      MakeWriteResourceName(instance_name_, NewUuid(), digest);
  int64_t offset = 0;
  std::string pending;  // read from source but not yet acknowledged
  std::vector<char> buf(kChunkBytes);
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext context;
    google::bytestream::WriteResponse response;
    auto stream = bytestream->Write(&context, &response);
    google::bytestream::WriteRequest request;
    request.set_resource_name(resource);
    bool broken = false;
    bool finished = false;
    while (!broken && !finished) {
      if (pending.empty()) {
        ASSIGN_OR_RETURN(size_t n, source(buf.data(), buf.size()));
        pending.assign(buf.data(), n);
      }
      request.set_write_offset(offset);
      request.set_data(pending);
      finished = offset + static_cast<int64_t>(pending.size()) >= digest.size();
      request.set_finish_write(finished);
      if (pending.empty() && !finished) {
        return absl::DataLossError(absl::StrCat(
            "source ended after ", offset, " of ", digest.size(), " bytes"));
      }
      if (!stream->Write(request)) {
        broken = true;
        break;
      }
      offset += static_cast<int64_t>(pending.size());
      pending.clear();
      request.clear_resource_name();
    }
    stream->WritesDone();
    grpc::Status status = stream->Finish();
    if (status.ok()) {
      if (response.committed_size() != digest.size()) {
        return absl::DataLossError(
            absl::StrCat("server committed ", response.committed_size(), " of ",
                         digest.size(), " bytes"));
      }
      return absl::OkStatus();
    }
    bool retryable =
        status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
        status.error_code() == grpc::StatusCode::ABORTED;
    if (!retryable || attempt >= retries) return FromGrpcStatus(status);
    // Resume where the server stopped; the source cannot rewind, so the
    // upload restarts only if the server kept everything we sent.
    grpc::ClientContext query_context;
    google::bytestream::QueryWriteStatusRequest query;
    query.set_resource_name(resource);
    google::bytestream::QueryWriteStatusResponse query_response;
    grpc::Status qs =
        bytestream->QueryWriteStatus(&query_context, query, &query_response);
    if (!qs.ok()) return FromGrpcStatus(status);
    if (query_response.complete()) return absl::OkStatus();
    if (query_response.committed_size() != offset)
      return FromGrpcStatus(status);
  }
}

absl::Status CasClient::WriteString(const std::string& data) {
  size_t pos = 0;
  return Write(Digest::Of(data),
               [&](char* buf, size_t max) -> absl::StatusOr<size_t> {
                 size_t n = std::min(max, data.size() - pos);
                 std::memcpy(buf, data.data() + pos, n);
                 pos += n;
                 return n;
               });
}

absl::Status CasClient::WriteFile(const std::string& path, Digest* digest_out) {
  // First pass hashes, second streams: the file never sits in memory.
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  Sha256 hash;
  std::vector<char> buf(kChunkBytes);
  int64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    hash.Update(
        absl::string_view(buf.data(), static_cast<size_t>(in.gcount())));
    size += in.gcount();
  }
  Digest digest = Digest::FromRaw(hash.Final(), size);
  if (digest_out) *digest_out = digest;
  ASSIGN_OR_RETURN(std::vector<Digest> missing, FindMissing({digest}));
  if (missing.empty()) return absl::OkStatus();
  in.clear();
  in.seekg(0);
  return Write(digest, [&](char* out, size_t max) -> absl::StatusOr<size_t> {
    in.read(out, static_cast<std::streamsize>(max));
    if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", path));
    return static_cast<size_t>(in.gcount());
  });
}

absl::Status CasClient::Read(const Digest& digest, const Sink& sink,
                             int64_t offset, int64_t limit) {
  std::vector<size_t> owners = ShardsFor(digest);
  absl::Status last;
  for (size_t shard : owners) {
    bool sunk = false;
    last = ReadFrom(shard, digest, sink, offset, limit, &sunk);
    Note(shard, last);
    if (last.ok()) return last;
    last = ShardError(shard, last);
    // A replica may have it, unless bytes already went to the sink.
    if (sunk || !TryNextReplica(last)) break;
  }
  return last;
}

absl::Status CasClient::ReadFrom(size_t shard, const Digest& digest,
                                 const Sink& sink, int64_t offset,
                                 int64_t limit, bool* sunk) {
  grpc::ClientContext context;
  google::bytestream::ReadRequest request;
  request.set_resource_name(MakeReadResourceName(instance_name_, digest));
  request.set_read_offset(offset);
  request.set_read_limit(limit);
  auto reader = shards_[shard].bytestream->Read(&context, request);
  google::bytestream::ReadResponse response;
  absl::Status sink_status;
  while (reader->Read(&response)) {
    *sunk = true;
    sink_status = sink(response.data());
    if (!sink_status.ok()) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  RETURN_IF_ERROR(sink_status);
  return FromGrpcStatus(status);
}

absl::StatusOr<std::string> CasClient::ReadString(const Digest& digest) {
  std::string out;
  RETURN_IF_ERROR(Read(digest, [&](absl::string_view chunk) {
    out.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<reapi::ActionResult> CasClient::GetActionResult(
    const Digest& action) {
  reapi::GetActionResultRequest request;
  request.set_instance_name(instance_name_);
  action.ToProto(request.mutable_action_digest());
  absl::Status last;
  for (size_t shard : ShardsFor(action)) {
    reapi::ActionResult result;
    grpc::ClientContext context;
    last = FromGrpcStatus(
        shards_[shard].ac->GetActionResult(&context, request, &result));
    Note(shard, last);
    if (last.ok() && shards_.size() > 1) {
      // Shards cannot see each other's blobs: check the outputs here.
      ASSIGN_OR_RETURN(std::vector<Digest> missing,
                       FindMissing(Referenced(result)));
      if (!missing.empty()) {
        return absl::NotFoundError(absl::StrCat(
            "action result for ", action.ToString(), " references ",
            missing.size(), " blob(s) no longer in the CAS, e.g. ",
            missing.front().ToString()));
      }
    }
    if (last.ok()) return result;
    last = ShardError(shard, last);
    if (!TryNextReplica(last)) break;
  }
  return last;
}

absl::Status CasClient::UpdateActionResult(const Digest& action,
                                           const reapi::ActionResult& result,
                                           const std::string& bearer_token) {
  reapi::UpdateActionResultRequest request;
  request.set_instance_name(instance_name_);
  action.ToProto(request.mutable_action_digest());
  *request.mutable_action_result() = result;
  if (shards_.size() > 1) {
    ASSIGN_OR_RETURN(std::vector<Digest> missing,
                     FindMissing(Referenced(result)));
    if (!missing.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "action_result references ", missing.size(),
          " blob(s) not in the CAS, e.g. ", missing.front().ToString(),
          "; upload outputs before the result"));
    }
  }
  // Every replica; an unreachable one is skipped while another takes it.
  absl::Status unreachable;
  bool stored = false;
  for (size_t shard : ShardsFor(action)) {
    reapi::ActionResult response;
    grpc::ClientContext context;
    if (!bearer_token.empty()) {
      context.AddMetadata("authorization", "Bearer " + bearer_token);
    }
    absl::Status s = FromGrpcStatus(
        shards_[shard].ac->UpdateActionResult(&context, request, &response));
    Note(shard, s);
    if (s.ok()) {
      stored = true;
    } else if (absl::IsUnavailable(s) && shards_.size() > 1) {
      unreachable = ShardError(shard, s);
    } else {
      return ShardError(shard, s);
    }
  }
  return stored ? absl::OkStatus() : unreachable;
}

absl::StatusOr<reapi::ServerCapabilities> CasClient::GetCapabilities() {
  reapi::GetCapabilitiesRequest request;
  request.set_instance_name(instance_name_);
  absl::Status last;
  for (size_t shard = 0; shard < shards_.size(); ++shard) {
    reapi::ServerCapabilities response;
    grpc::ClientContext context;
    last = FromGrpcStatus(shards_[shard].capabilities->GetCapabilities(
        &context, request, &response));
    if (last.ok()) return response;
    last = ShardError(shard, last);
  }
  return last;
}

absl::StatusOr<v1::GetStatsResponse> CasClient::GetStats() {
  v1::GetStatsResponse sum;
  for (size_t shard = 0; shard < shards_.size(); ++shard) {
    v1::GetStatsRequest request;
    v1::GetStatsResponse r;
    grpc::ClientContext context;
    absl::Status s =
        FromGrpcStatus(shards_[shard].admin->GetStats(&context, request, &r));
    if (!s.ok()) return ShardError(shard, s);
    sum.set_stored_bytes(sum.stored_bytes() + r.stored_bytes());
    sum.set_blob_count(sum.blob_count() + r.blob_count());
    sum.set_max_bytes(sum.max_bytes() + r.max_bytes());
    sum.set_evicted_blobs(sum.evicted_blobs() + r.evicted_blobs());
    sum.set_evicted_bytes(sum.evicted_bytes() + r.evicted_bytes());
    sum.set_action_cache_entries(sum.action_cache_entries() +
                                 r.action_cache_entries());
    sum.set_uploads_in_progress(sum.uploads_in_progress() +
                                r.uploads_in_progress());
  }
  return sum;
}

void BatchUploader::Add(size_t tag, const Digest& digest, std::string bytes) {
  const int64_t cost = digest.size() + kItemOverheadBytes;
  if (bytes_ + cost > kBatchBytes || batch_.size() >= kBatchItems) Flush();
  bytes_ += cost;
  batch_.emplace_back(digest, std::move(bytes));
  tags_.push_back(tag);
}

void BatchUploader::Flush() {
  if (batch_.empty()) return;
  absl::StatusOr<std::vector<absl::Status>> got = cas_->BatchUpdate(batch_);
  for (size_t i = 0; i < tags_.size(); ++i) {
    done_(tags_[i], got.ok() ? (*got)[i] : got.status(), !got.ok());
  }
  batch_.clear();
  tags_.clear();
  bytes_ = 0;
}

}  // namespace stagefarm
