#include "common/tenants.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace stagefarm {

absl::StatusOr<std::shared_ptr<const Tenants>> Tenants::Load(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tenants ", path, ": cannot read it"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

absl::StatusOr<std::shared_ptr<const Tenants>> Tenants::Parse(
    absl::string_view text, const std::string& what) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("tenants") ||
      !j["tenants"].is_array()) {
    return bad("expected {\"tenants\": [...]}");
  }
  auto t = std::make_shared<Tenants>();
  for (size_t i = 0; i < j["tenants"].size(); ++i) {
    const nlohmann::json& e = j["tenants"][i];
    std::string field = absl::StrCat("tenants[", i, "]");
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
        e["name"].get<std::string>().empty()) {
      return bad(field + ".name: a non-empty string is required");
    }
    Tenant tenant;
    tenant.name = e["name"].get<std::string>();
    tenant.worker = e.value("worker", false);
    if (e.contains("max_builds")) {
      if (!e["max_builds"].is_number_integer() ||
          e["max_builds"].get<int64_t>() < 0) {
        return bad(field + ".max_builds: a whole number, 0 for no limit");
      }
      tenant.max_builds = e["max_builds"].get<int>();
    }
    if (e.contains("max_bytes")) {
      if (!e["max_bytes"].is_number_integer() ||
          e["max_bytes"].get<int64_t>() < 0) {
        return bad(field + ".max_bytes: a whole number, 0 for no limit");
      }
      tenant.max_bytes = e["max_bytes"].get<int64_t>();
    }
    auto strings = [&](const char* key,
                       std::vector<std::string>* out) -> absl::Status {
      if (!e.contains(key)) return absl::OkStatus();
      if (!e[key].is_array()) {
        return bad(absl::StrCat(field, ".", key, ": a list of strings"));
      }
      for (const auto& s : e[key]) {
        if (!s.is_string()) {
          return bad(absl::StrCat(field, ".", key, ": a list of strings"));
        }
        out->push_back(s.get<std::string>());
      }
      return absl::OkStatus();
    };
    std::vector<std::string> tokens, certs;
    if (auto s = strings("instances", &tenant.instances); !s.ok()) return s;
    if (auto s = strings("tokens_sha256", &tokens); !s.ok()) return s;
    if (auto s = strings("certificates", &certs); !s.ok()) return s;
    if (tokens.empty() && certs.empty()) {
      return bad(field +
                 ": needs tokens_sha256 or certificates to be known by");
    }
    size_t index = t->tenants_.size();
    for (std::string h : tokens) {
      h = absl::AsciiStrToLower(h);
      if (h.size() != 64 ||
          h.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return bad(field + ".tokens_sha256: 64 hex digits each (sha256sum)");
      }
      if (!t->by_token_hash_.emplace(h, index).second) {
        return bad(field + ".tokens_sha256: a token belongs to two tenants");
      }
    }
    for (const std::string& c : certs) {
      if (!t->by_certificate_.emplace(c, index).second) {
        return bad(field + ".certificates: \"" + c +
                   "\" belongs to two tenants");
      }
    }
    t->tenants_.push_back(std::move(tenant));
  }
  return std::shared_ptr<const Tenants>(std::move(t));
}

absl::StatusOr<const Tenant*> Tenants::ByToken(absl::string_view token) const {
  Sha256 h;
  h.Update(token);
  auto t = by_token_hash_.find(h.FinalHex());
  if (t != by_token_hash_.end()) return &tenants_[t->second];
  return absl::UnauthenticatedError(
      "the bearer token is not known to this farm");
}

absl::StatusOr<const Tenant*> Tenants::Identify(
    const grpc::ServerContext& context) const {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) {
    absl::string_view value(it->second.data(), it->second.size());
    if (absl::ConsumePrefix(&value, "Bearer ")) return ByToken(value);
    return absl::UnauthenticatedError(
        "the bearer token is not known to this farm");
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const grpc::string_ref& cn :
         auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
      auto t = by_certificate_.find(std::string(cn.data(), cn.size()));
      if (t != by_certificate_.end()) return &tenants_[t->second];
    }
  }
  return absl::UnauthenticatedError(
      "this farm needs to know who is calling: set STAGEFARM_TOKEN (or "
      "--token-file), or use a client certificate it knows");
}

absl::Status Tenants::CheckInstance(const Tenant& tenant,
                                    absl::string_view instance) {
  for (const std::string& i : tenant.instances) {
    if (i == "*" || i == instance) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "tenant ", tenant.name, " may not use instance \"", instance, "\""));
}

absl::Status Tenants::CheckWorker(const Tenant& tenant,
                                  absl::string_view what) {
  if (tenant.worker) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "tenant ", tenant.name, " is not a worker: only workers ", what));
}

}  // namespace stagefarm
