#include "registry/auth.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "registry/reference.h"

namespace stagefarm::registry {

absl::StatusOr<Challenge> ParseChallenge(absl::string_view header) {
  absl::string_view s = absl::StripAsciiWhitespace(header);
  size_t space = s.find(' ');
  Challenge c;
  c.scheme = absl::AsciiStrToLower(s.substr(0, space));
  if (c.scheme.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("WWW-Authenticate \"", header, "\": no scheme"));
  }
  if (space == absl::string_view::npos) return c;
  s = s.substr(space + 1);
  while (true) {
    s = absl::StripLeadingAsciiWhitespace(s);
    if (s.empty()) break;
    size_t eq = s.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WWW-Authenticate \"", header, "\": a parameter without '='"));
    }
    std::string key =
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(0, eq)));
    s = absl::StripLeadingAsciiWhitespace(s.substr(eq + 1));
    std::string value;
    if (absl::ConsumePrefix(&s, "\"")) {
      size_t i = 0;
      bool closed = false;
      for (; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          value += s[++i];
        } else if (s[i] == '"') {
          closed = true;
          break;
        } else {
          value += s[i];
        }
      }
      if (!closed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "WWW-Authenticate \"", header, "\": an unterminated quote"));
      }
      s = s.substr(i + 1);
    } else {
      size_t end = s.find(',');
      value = std::string(absl::StripAsciiWhitespace(s.substr(0, end)));
      s = end == absl::string_view::npos ? absl::string_view() : s.substr(end);
    }
    c.params[key] = value;
    s = absl::StripLeadingAsciiWhitespace(s);
    if (!s.empty() && !absl::ConsumePrefix(&s, ",")) {
      return absl::InvalidArgumentError(
          absl::StrCat("WWW-Authenticate \"", header,
                       "\": expected ',' between parameters"));
    }
  }
  return c;
}

namespace {

// "https://index.docker.io/v1/" -> "index.docker.io"; "host:5000" stays.
std::string HostOfKey(absl::string_view key) {
  absl::string_view k = key;
  if (!absl::ConsumePrefix(&k, "https://")) absl::ConsumePrefix(&k, "http://");
  k = k.substr(0, k.find('/'));
  std::string host(k);
  if (host == "index.docker.io" || host == "registry-1.docker.io") {
    host = kDockerHub;
  }
  return host;
}

}  // namespace

absl::StatusOr<std::optional<Credentials>> LookupCredentials(
    const std::string& config_path, const std::string& registry) {
  if (config_path.empty()) return std::nullopt;
  std::ifstream in(config_path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<nlohmann::json> parsed = json::Parse(ss.str(), config_path);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config_path, ": not a JSON object"));
  }
  auto helper_note = [&]() -> absl::StatusOr<std::optional<Credentials>> {
    ASSIGN_OR_RETURN(const nlohmann::json* helpers,
                     json::OptionalObject(j, "credHelpers", config_path));
    bool helper = j.contains("credsStore") ||
                  (helpers != nullptr && helpers->contains(registry));
    if (helper) {
      return absl::UnimplementedError(absl::StrCat(
          config_path, " keeps the credentials for ", registry,
          " in a credential helper, which stagefarm does not run; add an "
          "\"auths\" entry (docker login with no credsStore) instead"));
    }
    return std::nullopt;
  };
  ASSIGN_OR_RETURN(const nlohmann::json* auths,
                   json::OptionalObject(j, "auths", config_path));
  if (auths == nullptr) return helper_note();
  for (const auto& [key, entry] : auths->items()) {
    if (HostOfKey(key) != registry) continue;
    std::string field = absl::StrCat(config_path, ": auths[\"", key, "\"]");
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " is a ", json::TypeName(entry), ", not an object"));
    }
    ASSIGN_OR_RETURN(std::optional<std::string> auth,
                     json::OptionalString(entry, "auth", field));
    ASSIGN_OR_RETURN(std::optional<std::string> username,
                     json::OptionalString(entry, "username", field));
    ASSIGN_OR_RETURN(std::optional<std::string> password,
                     json::OptionalString(entry, "password", field));
    ASSIGN_OR_RETURN(std::optional<std::string> identity,
                     json::OptionalString(entry, "identitytoken", field));
    Credentials c;
    if (auth.has_value() && !auth->empty()) {
      std::string decoded;
      if (!absl::Base64Unescape(*auth, &decoded) ||
          decoded.find(':') == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".auth is not base64 of user:password"));
      }
      size_t colon = decoded.find(':');
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
      return c;
    }
    if (username.has_value() && password.has_value()) {
      c.username = *username;
      c.password = *password;
      return c;
    }
    if (identity.has_value()) {
      c.username = "<token>";
      c.password = *identity;
      return c;
    }
  }
  return helper_note();
}

std::string DefaultDockerConfig() {
  if (const char* d = getenv("DOCKER_CONFIG"); d != nullptr && *d) {
    return absl::StrCat(d, "/config.json");
  }
  if (const char* h = getenv("HOME"); h != nullptr && *h) {
    return absl::StrCat(h, "/.docker/config.json");
  }
  return "";
}

}  // namespace stagefarm::registry
