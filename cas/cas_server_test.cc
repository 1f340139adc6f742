// The CAS over real gRPC on 127.0.0.1:0 with a real RocksDB under a temp
// dir: the REAPI behaviour a client sees, including error codes.
#include "cas/cas_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <limits>

#include "common/cas_client.h"
#include "common/resource_name.h"

namespace stagefarm {
namespace {

using google::bytestream::QueryWriteStatusRequest;
using google::bytestream::QueryWriteStatusResponse;
using google::bytestream::ReadRequest;
using google::bytestream::ReadResponse;
using google::bytestream::WriteRequest;
using google::bytestream::WriteResponse;

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

class CasServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/cas-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.store.path = dir_ + "/db";
    options_.limits.max_batch_total_size_bytes = 1 << 20;
  }
  void TearDown() override {
    // Close the client first: a channel outliving its server can wait on
    // reconnection backoff when destroyed.
    channel_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Start() {
    auto server = CasServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = CasClient::Connect(server_->address()).channels[0];
  }
  CasClient Client(const std::string& instance = "main") {
    return CasClient(channel_, instance);
  }

  std::string dir_;
  CasServerOptions options_;
  std::unique_ptr<CasServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(CasServerTest, CapabilitiesAdvertiseSha256AndLimits) {
  Start();
  auto caps = Client().GetCapabilities();
  ASSERT_TRUE(caps.ok()) << caps.status();
  ASSERT_EQ(caps->cache_capabilities().digest_function_size(), 1);
  EXPECT_EQ(caps->cache_capabilities().digest_function(0),
            reapi::DigestFunction::SHA256);
  EXPECT_EQ(caps->cache_capabilities().max_batch_total_size_bytes(), 1 << 20);
  EXPECT_TRUE(caps->cache_capabilities()
                  .action_cache_update_capabilities()
                  .update_enabled());
  EXPECT_EQ(caps->high_api_version().major(), 2);
}

TEST_F(CasServerTest, ByteStreamRoundTripWithOffsetAndLimit) {
  Start();
  CasClient client = Client();
  std::string data = Pattern(5 << 20, 1);
  Digest d = Digest::Of(data);
  ASSERT_TRUE(client.WriteString(data).ok());
  auto back = client.ReadString(d);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == data);
  std::string part;
  ASSERT_TRUE(client
                  .Read(
                      d,
                      [&](absl::string_view c) {
                        part.append(c.data(), c.size());
                        return absl::OkStatus();
                      },
                      (1 << 20) + 3, 2 << 20)
                  .ok());
  EXPECT_TRUE(part == data.substr((1 << 20) + 3, 2 << 20));
  auto missing = client.FindMissing({d, Digest::Of("nope")});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ(missing->size(), 1u);
}

TEST_F(CasServerTest, CorruptUploadIsInvalidArgumentAndLeavesNothing) {
  Start();
  CasClient client = Client();
  std::string data = Pattern(3 << 20, 2);
  Digest d = Digest::Of(data);
  data[100] ^= 0x55;
  size_t pos = 0;
  absl::Status s =
      client.Write(d, [&](char* buf, size_t max) -> absl::StatusOr<size_t> {
        size_t n = std::min(max, data.size() - pos);
        memcpy(buf, data.data() + pos, n);
        pos += n;
        return n;
      });
  // REAPI: a ByteStream upload whose bytes are not its digest.
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(client.FindMissing({d})->size(), 1u);
  EXPECT_EQ(client.ReadString(d).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CasServerTest, CutOffUploadResumesWithQueryWriteStatus) {
  Start();
  CasClient client = Client();
  std::string data = Pattern(3 << 20, 3);
  Digest d = Digest::Of(data);
  std::string resource = MakeWriteResourceName("main", "uuid-1", d);
  {
    grpc::ClientContext context;
    WriteResponse response;
    auto stream = client.bytestream(0)->Write(&context, &response);
    WriteRequest req;
    req.set_resource_name(resource);
    req.set_data(data.substr(0, 1 << 20));
    ASSERT_TRUE(stream->Write(req));
    req.clear_resource_name();
    req.set_write_offset(1 << 20);
    req.set_data(data.substr(1 << 20, 1 << 19));
    ASSERT_TRUE(stream->Write(req));
    stream->WritesDone();
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(client.FindMissing({d})->size(), 1u);  // nothing readable yet
  grpc::ClientContext qc;
  QueryWriteStatusRequest query;
  query.set_resource_name(resource);
  QueryWriteStatusResponse status_response;
  ASSERT_TRUE(client.bytestream(0)
                  ->QueryWriteStatus(&qc, query, &status_response)
                  .ok());
  EXPECT_EQ(status_response.committed_size(), (1 << 20) + (1 << 19));
  EXPECT_FALSE(status_response.complete());
  {
    grpc::ClientContext context;
    WriteResponse response;
    auto stream = client.bytestream(0)->Write(&context, &response);
    WriteRequest req;
    req.set_resource_name(resource);
    req.set_write_offset(status_response.committed_size());
    req.set_data(data.substr(status_response.committed_size()));
    req.set_finish_write(true);
    ASSERT_TRUE(stream->Write(req));
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
    EXPECT_EQ(response.committed_size(), d.size());
  }
  EXPECT_TRUE(*client.ReadString(d) == data);
}

TEST_F(CasServerTest, RestartingAnUploadFromZeroIsAccepted) {
  Start();
  CasClient client = Client();
  std::string data = Pattern(2 << 20, 4);
  Digest d = Digest::Of(data);
  std::string resource = MakeWriteResourceName("main", "uuid-restart", d);
  for (int attempt = 0; attempt < 2; ++attempt) {
    grpc::ClientContext context;
    WriteResponse response;
    auto stream = client.bytestream(0)->Write(&context, &response);
    WriteRequest req;
    req.set_resource_name(resource);
    // First attempt: half, then the stream ends. Second: all from zero.
    req.set_data(attempt == 0 ? data.substr(0, 1 << 20) : data);
    req.set_finish_write(attempt == 1);
    ASSERT_TRUE(stream->Write(req));
    stream->WritesDone();
    grpc::Status status = stream->Finish();
    if (attempt == 1) {
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.committed_size(), d.size());
    }
  }
  EXPECT_TRUE(*client.ReadString(d) == data);
}

TEST_F(CasServerTest, BadRequestsGetTheRightCodeAndNameTheField) {
  Start();
  CasClient client = Client();
  auto cas = reapi::ContentAddressableStorage::NewStub(channel_);

  {  // Non-hex hash in FindMissingBlobs.
    reapi::FindMissingBlobsRequest req;
    Digest::Of("x").ToProto(req.add_blob_digests());
    auto* bad = req.add_blob_digests();
    bad->set_hash(std::string(64, 'z'));
    bad->set_size_bytes(1);
    reapi::FindMissingBlobsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = cas->FindMissingBlobs(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("blob_digests[1].hash"), std::string::npos)
        << s.error_message();
  }
  {  // Batch over the limit.
    reapi::BatchUpdateBlobsRequest req;
    for (int i = 0; i < 3; ++i) {
      std::string data = Pattern(400 << 10, 10 + i);
      auto* r = req.add_requests();
      Digest::Of(data).ToProto(r->mutable_digest());
      r->set_data(data);
    }
    reapi::BatchUpdateBlobsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = cas->BatchUpdateBlobs(&ctx, req, &resp);
    // REAPI: INVALID_ARGUMENT for more than the server's limit.
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("max_batch_total_size_bytes"),
              std::string::npos);
  }
  {  // Wrong size and wrong content inside a batch: per-item statuses.
    reapi::BatchUpdateBlobsRequest req;
    req.set_instance_name("main");
    auto* wrong_size = req.add_requests();
    Digest::Of("abc").ToProto(wrong_size->mutable_digest());
    wrong_size->mutable_digest()->set_size_bytes(4);
    wrong_size->set_data("abc");
    auto* wrong_data = req.add_requests();
    Digest::Of("abc").ToProto(wrong_data->mutable_digest());
    wrong_data->set_data("abd");
    auto* good = req.add_requests();
    Digest::Of("good").ToProto(good->mutable_digest());
    good->set_data("good");
    reapi::BatchUpdateBlobsResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(cas->BatchUpdateBlobs(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.responses_size(), 3);
    EXPECT_EQ(resp.responses(0).status().code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(resp.responses(0).status().message().find("requests[0]"),
              std::string::npos);
    // REAPI: a digest that does not match the data is INVALID_ARGUMENT.
    EXPECT_EQ(resp.responses(1).status().code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(resp.responses(2).status().code(), grpc::StatusCode::OK);
    EXPECT_EQ(client.FindMissing({Digest::Of("abc")})->size(), 1u);
  }
  {  // Claimed sizes that would overflow a sum.
    reapi::BatchReadBlobsRequest req;
    for (int i = 0; i < 3; ++i) {
      auto* d = req.add_digests();
      d->set_hash(Digest::Of(std::to_string(i)).hash());
      d->set_size_bytes(std::numeric_limits<int64_t>::max() / 2);
    }
    reapi::BatchReadBlobsResponse resp;
    grpc::ClientContext ctx;
    EXPECT_EQ(cas->BatchReadBlobs(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // Batch read over the limit.
    reapi::BatchReadBlobsRequest req;
    auto* d = req.add_digests();
    d->set_hash(Digest::Of("x").hash());
    d->set_size_bytes(2 << 20);
    reapi::BatchReadBlobsResponse resp;
    grpc::ClientContext ctx;
    EXPECT_EQ(cas->BatchReadBlobs(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  auto read_code = [&](const std::string& name, int64_t offset = 0) {
    grpc::ClientContext ctx;
    ReadRequest req;
    req.set_resource_name(name);
    req.set_read_offset(offset);
    auto reader = client.bytestream(0)->Read(&ctx, req);
    ReadResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  };
  Digest good = Digest::Of("good");
  EXPECT_EQ(read_code("main/blobs/nothex/4").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status s = read_code("main/blobs/blake3/" + good.hash() + "/4");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("digest function"), std::string::npos);
  EXPECT_EQ(read_code("main/blobs/" + good.hash() + "/x").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(read_code("main/blobs/" + good.hash() + "/4", -1).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(read_code("main/blobs/" + good.hash() + "/4", 5).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(read_code("main/blobs/" + good.hash() + "/4").error_code(),
            grpc::StatusCode::OK);
  {  // Write with a wrong offset.
    grpc::ClientContext ctx;
    WriteResponse resp;
    auto stream = client.bytestream(0)->Write(&ctx, &resp);
    WriteRequest req;
    req.set_resource_name(
        MakeWriteResourceName("main", "u", Digest::Of("12345")));
    req.set_write_offset(2);
    req.set_data("345");
    req.set_finish_write(true);
    stream->Write(req);
    stream->WritesDone();
    grpc::Status ws = stream->Finish();
    EXPECT_EQ(ws.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(ws.error_message().find("write_offset"), std::string::npos);
  }
  {  // Unparseable action digest.
    auto ac = reapi::ActionCache::NewStub(channel_);
    reapi::GetActionResultRequest req;
    req.mutable_action_digest()->set_hash("abc");
    reapi::ActionResult resp;
    grpc::ClientContext ctx;
    grpc::Status as = ac->GetActionResult(&ctx, req, &resp);
    EXPECT_EQ(as.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(as.error_message().find("action_digest"), std::string::npos);
  }
  {  // Bad instance name.
    CasClient bad_instance(channel_, "a//b");
    EXPECT_EQ(bad_instance.FindMissing({good}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(CasServerTest, InstancesAreSeparateUnlessShared) {
  options_.policy.share_groups = {{"team-a", "team-a-ci"}};
  Start();
  ASSERT_TRUE(Client("team-a").WriteString("private to a").ok());
  Digest d = Digest::Of("private to a");
  EXPECT_EQ(Client("team-b").ReadString(d).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Client("team-b").FindMissing({d})->size(), 1u);
  EXPECT_EQ(*Client("team-a-ci").ReadString(d), "private to a");
  auto batch = Client("team-b").BatchRead({d});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch)[0].second.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CasServerTest, ActionCacheWritesCanBeReservedForWorkers) {
  options_.policy.ac_writers = ActionCacheWriters::kToken;
  options_.policy.ac_token = "worker-secret";
  Start();
  CasClient client = Client();
  ASSERT_TRUE(client.WriteString("output").ok());
  reapi::ActionResult result;
  auto* f = result.add_output_files();
  f->set_path("out");
  Digest::Of("output").ToProto(f->mutable_digest());
  Digest action = Digest::Of("action-1");
  EXPECT_EQ(client.UpdateActionResult(action, result).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(client.UpdateActionResult(action, result, "forged").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(client.GetActionResult(action).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(client.UpdateActionResult(action, result, "worker-secret").ok());
  auto got = client.GetActionResult(action);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->output_files(0).path(), "out");
  EXPECT_FALSE(client.GetCapabilities()
                   ->cache_capabilities()
                   .action_cache_update_capabilities()
                   .update_enabled());
}

TEST_F(CasServerTest, EvictionNeverLeavesADanglingActionResult) {
  options_.store.max_bytes = 3 << 20;
  Start();
  CasClient client = Client();
  std::string out = Pattern(2 << 20, 20);
  ASSERT_TRUE(client.WriteString(out).ok());
  reapi::ActionResult result;
  Digest::Of(out).ToProto(result.add_output_files()->mutable_digest());
  result.mutable_output_files(0)->set_path("big.out");
  Digest action = Digest::Of("action-2");
  ASSERT_TRUE(client.UpdateActionResult(action, result).ok());
  ASSERT_TRUE(client.GetActionResult(action).ok());
  // Two more megabytes push the output out.
  ASSERT_TRUE(client.WriteString(Pattern(2 << 20, 21)).ok());
  EXPECT_EQ(client.FindMissing({Digest::Of(out)})->size(), 1u);
  EXPECT_EQ(client.GetActionResult(action).status().code(),
            absl::StatusCode::kNotFound);
  auto stats = client.GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->evicted_blobs(), 1);
  EXPECT_LE(stats->stored_bytes(), 3 << 20);
  EXPECT_EQ(stats->action_cache_entries(), 0);
}

TEST_F(CasServerTest, GetTreePagesThroughTheWholeTree) {
  Start();
  CasClient client = Client();
  // root -> {a -> {c}, b}
  reapi::Directory c;
  Digest::Of("f").ToProto(c.add_files()->mutable_digest());
  c.mutable_files(0)->set_name("f");
  std::string c_bytes = c.SerializeAsString();
  reapi::Directory a;
  a.add_directories()->set_name("c");
  Digest::Of(c_bytes).ToProto(a.mutable_directories(0)->mutable_digest());
  std::string a_bytes = a.SerializeAsString();
  reapi::Directory b;
  b.add_files()->set_name("empty");
  Digest::Empty().ToProto(b.mutable_files(0)->mutable_digest());
  std::string b_bytes = b.SerializeAsString();
  reapi::Directory root;
  root.add_directories()->set_name("a");
  Digest::Of(a_bytes).ToProto(root.mutable_directories(0)->mutable_digest());
  root.add_directories()->set_name("b");
  Digest::Of(b_bytes).ToProto(root.mutable_directories(1)->mutable_digest());
  std::string root_bytes = root.SerializeAsString();
  auto put = client.BatchUpdate({{Digest::Of(c_bytes), c_bytes},
                                 {Digest::Of(a_bytes), a_bytes},
                                 {Digest::Of(b_bytes), b_bytes},
                                 {Digest::Of(root_bytes), root_bytes}});
  ASSERT_TRUE(put.ok());
  for (const auto& s : *put) ASSERT_TRUE(s.ok()) << s;

  auto cas = reapi::ContentAddressableStorage::NewStub(channel_);
  std::vector<std::string> seen;
  std::string token;
  int calls = 0;
  do {
    reapi::GetTreeRequest req;
    req.set_instance_name("main");
    Digest::Of(root_bytes).ToProto(req.mutable_root_digest());
    req.set_page_size(2);
    req.set_page_token(token);
    grpc::ClientContext ctx;
    auto reader = cas->GetTree(&ctx, req);
    reapi::GetTreeResponse resp;
    // Take only the first page of each call, then resume by token.
    ASSERT_TRUE(reader->Read(&resp));
    for (const auto& d : resp.directories())
      seen.push_back(d.SerializeAsString());
    token = resp.next_page_token();
    ctx.TryCancel();
    reader->Finish();
    ASSERT_LT(++calls, 5);
  } while (!token.empty());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], root_bytes);
  EXPECT_EQ(seen[3], c_bytes);

  reapi::GetTreeRequest req;
  req.set_instance_name("other");
  Digest::Of(root_bytes).ToProto(req.mutable_root_digest());
  grpc::ClientContext ctx;
  auto reader = cas->GetTree(&ctx, req);
  reapi::GetTreeResponse resp;
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

// grpc.health.v1.Health/Check and reflection, spoken with hand-encoded
// messages (their protos are not part of this build).
TEST_F(CasServerTest, HealthAndReflectionAreServed) {
  Start();
  grpc::GenericStub stub(channel_);
  auto call = [&](const std::string& method, const std::string& request_bytes)
      -> std::pair<grpc::Status, std::string> {
    grpc::ClientContext ctx;
    grpc::Slice slice(request_bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) { done.set_value(s); });
    grpc::Status s = done.get_future().get();
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (s.ok() && response.Dump(&slices).ok()) {
      for (auto& sl : slices) {
        bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
      }
    }
    return {s, bytes};
  };
  auto [status, bytes] = call("/grpc.health.v1.Health/Check", "");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING

  // ServerReflectionInfo is a bidi stream; one request, one response.
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto stream = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  void* tag;
  bool ok;
  stream->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::Slice req_slice(std::string("\x3a\x00", 2));  // list_services: ""
  grpc::ByteBuffer req(&req_slice, 1);
  stream->Write(req, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer resp;
  stream->Read(&resp, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string listing;
  for (auto& sl : slices)
    listing.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_NE(
      listing.find("build.bazel.remote.execution.v2.ContentAddressableStorage"),
      std::string::npos);
  EXPECT_NE(listing.find("google.bytestream.ByteStream"), std::string::npos);
  ctx.TryCancel();
  grpc::Status finish_status;
  stream->Finish(&finish_status, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(CasServerTest, DataSurvivesARestart) {
  Start();
  ASSERT_TRUE(Client().WriteString("kept").ok());
  server_.reset();
  Start();
  EXPECT_EQ(*Client().ReadString(Digest::Of("kept")), "kept");
}

}  // namespace
}  // namespace stagefarm
