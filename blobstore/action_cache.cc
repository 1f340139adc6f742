#include "blobstore/action_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace stagefarm {
namespace {

// Inline contents are a convenience for small outputs only.
constexpr int64_t kMaxInlineBytes = 1 << 20;

absl::Status AddDigest(const reapi::Digest& proto, std::string field,
                       std::vector<Digest>* out) {
  ASSIGN_OR_RETURN(Digest d, Digest::FromProto(proto, field));
  out->push_back(d);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Digest>> ActionCache::Referenced(
    absl::string_view ns, const reapi::ActionResult& result,
    bool include_tree_contents) {
  std::vector<Digest> out;
  for (int i = 0; i < result.output_files_size(); ++i) {
    RETURN_IF_ERROR(AddDigest(result.output_files(i).digest(),
                              absl::StrCat("output_files[", i, "].digest"),
                              &out));
  }
  for (int i = 0; i < result.output_directories_size(); ++i) {
    const reapi::OutputDirectory& dir = result.output_directories(i);
    ASSIGN_OR_RETURN(
        Digest tree,
        Digest::FromProto(dir.tree_digest(), absl::StrCat("output_directories[",
                                                          i, "].tree_digest")));
    out.push_back(tree);
    if (!include_tree_contents) continue;
    absl::StatusOr<std::string> bytes = cas_->Get(ns, tree);
    if (!bytes.ok()) continue;  // reported missing by the caller's check
    reapi::Tree parsed;
    if (!parsed.ParseFromString(*bytes)) {
      return absl::DataLossError(
          absl::StrCat("output_directories[", i, "]: tree is not a Tree"));
    }
    auto add_files = [&](const reapi::Directory& d) -> absl::Status {
      for (const auto& f : d.files()) {
        RETURN_IF_ERROR(AddDigest(f.digest(), "tree file", &out));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(add_files(parsed.root()));
    for (const auto& child : parsed.children()) {
      RETURN_IF_ERROR(add_files(child));
    }
  }
  if (result.has_stdout_digest()) {
    RETURN_IF_ERROR(AddDigest(result.stdout_digest(), "stdout_digest", &out));
  }
  if (result.has_stderr_digest()) {
    RETURN_IF_ERROR(AddDigest(result.stderr_digest(), "stderr_digest", &out));
  }
  return out;
}

absl::StatusOr<reapi::ActionResult> ActionCache::Get(
    absl::string_view ns, const Digest& action,
    const InlineRequest& inline_request) {
  ASSIGN_OR_RETURN(std::string bytes, storage_->GetAction(ns, action));
  reapi::ActionResult result;
  if (!result.ParseFromString(bytes)) {
    storage_->DeleteAction(ns, action).IgnoreError();
    return absl::NotFoundError(absl::StrCat(
        "action result for ", action.ToString(), " is unreadable"));
  }
  if (shard_) return result;  // the client checks across the shards
  absl::StatusOr<std::vector<Digest>> referenced = Referenced(ns, result, true);
  if (!referenced.ok()) {
    storage_->DeleteAction(ns, action).IgnoreError();
    return absl::NotFoundError(
        absl::StrCat("action result for ", action.ToString(),
                     " is invalid: ", referenced.status().message()));
  }
  ASSIGN_OR_RETURN(std::vector<Digest> missing,
                   cas_->FindMissing(ns, *referenced));
  if (!missing.empty()) {
    // An output was evicted: the result is useless, forget it.
    storage_->DeleteAction(ns, action).IgnoreError();
    return absl::NotFoundError(absl::StrCat(
        "action result for ", action.ToString(), " references ", missing.size(),
        " blob(s) no longer in the CAS, e.g. ", missing.front().ToString()));
  }
  int64_t budget = kMaxInlineBytes;
  auto inline_blob = [&](const reapi::Digest& proto,
                         std::string* out) -> absl::Status {
    if (proto.size_bytes() > budget) return absl::OkStatus();
    ASSIGN_OR_RETURN(Digest d, Digest::FromProto(proto));
    ASSIGN_OR_RETURN(*out, cas_->Get(ns, d));
    budget -= d.size();
    return absl::OkStatus();
  };
  if (inline_request.stdout_raw && result.has_stdout_digest()) {
    RETURN_IF_ERROR(
        inline_blob(result.stdout_digest(), result.mutable_stdout_raw()));
  }
  if (inline_request.stderr_raw && result.has_stderr_digest()) {
    RETURN_IF_ERROR(
        inline_blob(result.stderr_digest(), result.mutable_stderr_raw()));
  }
  for (auto& file : *result.mutable_output_files()) {
    if (std::find(inline_request.output_files.begin(),
                  inline_request.output_files.end(),
                  file.path()) != inline_request.output_files.end()) {
      RETURN_IF_ERROR(inline_blob(file.digest(), file.mutable_contents()));
    }
  }
  return result;
}

absl::Status ActionCache::Update(absl::string_view ns, const Digest& action,
                                 reapi::ActionResult result) {
  // Inline contents go to the CAS; the stored result references digests.
  auto store_inline = [&](std::string* raw, reapi::Digest* digest,
                          std::string field) -> absl::Status {
    if (shard_) {
      return absl::InvalidArgumentError(absl::StrCat(
          field,
          ": this CAS is one shard of several; upload outputs "
          "with the CAS API (they may belong on another shard), not "
          "inline in the result"));
    }
    Digest d = Digest::Of(*raw);
    if (digest->hash().empty()) d.ToProto(digest);
    ASSIGN_OR_RETURN(Digest claimed, Digest::FromProto(*digest, field));
    if (claimed != d) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": inline contents do not match the digest"));
    }
    RETURN_IF_ERROR(cas_->Put(ns, *raw));
    raw->clear();
    return absl::OkStatus();
  };
  if (!result.stdout_raw().empty()) {
    RETURN_IF_ERROR(store_inline(result.mutable_stdout_raw(),
                                 result.mutable_stdout_digest(),
                                 "stdout_digest"));
  }
  if (!result.stderr_raw().empty()) {
    RETURN_IF_ERROR(store_inline(result.mutable_stderr_raw(),
                                 result.mutable_stderr_digest(),
                                 "stderr_digest"));
  }
  for (int i = 0; i < result.output_files_size(); ++i) {
    auto* f = result.mutable_output_files(i);
    if (f->contents().empty()) continue;
    RETURN_IF_ERROR(store_inline(f->mutable_contents(), f->mutable_digest(),
                                 absl::StrCat("output_files[", i, "].digest")));
  }
  ASSIGN_OR_RETURN(std::vector<Digest> referenced,
                   Referenced(ns, result, false));
  if (shard_)
    return storage_->PutAction(ns, action, result.SerializeAsString());
  ASSIGN_OR_RETURN(std::vector<Digest> missing,
                   cas_->FindMissing(ns, referenced));
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "action_result references ", missing.size(),
        " blob(s) not in the CAS, e.g. ", missing.front().ToString(),
        "; upload outputs before the result"));
  }
  return storage_->PutAction(ns, action, result.SerializeAsString());
}

}  // namespace stagefarm
