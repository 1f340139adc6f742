#include "common/json.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace stagefarm::json {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 (Go's
// utf8.DecodeRune acceptance: no overlongs, no surrogates, <= U+10FFFF).
size_t ValidSequenceAt(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

// A copy of `value` whose strings (keys too) are valid UTF-8.
nlohmann::json Sanitized(const nlohmann::json& value) {
  if (value.is_string()) {
    return ValidUtf8(value.get_ref<const std::string&>());
  }
  if (value.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : value) out.push_back(Sanitized(v));
    return out;
  }
  if (value.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : value.items()) out[ValidUtf8(k)] = Sanitized(v);
    return out;
  }
  return value;
}

absl::Status WrongType(const nlohmann::json& v, absl::string_view field,
                       absl::string_view what, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": field \"", field, "\" is a ", TypeName(v), ", not a ", want));
}

const nlohmann::json* Member(const nlohmann::json& object,
                             absl::string_view field) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(std::string(field));
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

bool IsValidUtf8(absl::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = ValidSequenceAt(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ValidUtf8(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = ValidSequenceAt(bytes, i);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(bytes.data() + i, n);
      i += n;
    }
  }
  return out;
}

std::string Dump(const nlohmann::json& value, int indent) {
  try {
    return value.dump(indent);
  } catch (const nlohmann::json::exception&) {
    // A string was not UTF-8: write Go's replacement instead.
  }
  try {
    return Sanitized(value).dump(indent);
  } catch (const std::exception&) {
    return "null";  // unreachable: every string is valid now
  }
}

const char* TypeName(const nlohmann::json& value) { return value.type_name(); }

absl::StatusOr<nlohmann::json> Parse(absl::string_view text,
                                     absl::string_view what) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not JSON (at byte ", e.byte, ")"));
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not JSON"));
  }
}

absl::StatusOr<std::optional<std::string>> OptionalString(
    const nlohmann::json& object, absl::string_view field,
    absl::string_view what) {
  const nlohmann::json* v = Member(object, field);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(*v, field, what, "string");
  return std::optional<std::string>(v->get_ref<const std::string&>());
}

absl::StatusOr<std::string> String(const nlohmann::json& object,
                                   absl::string_view field,
                                   absl::string_view what) {
  auto v = OptionalString(object, field, what);
  if (!v.ok()) return v.status();
  if (!v->has_value()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": field \"", field, "\" is missing"));
  }
  return std::move(**v);
}

absl::StatusOr<std::optional<int64_t>> OptionalInt(const nlohmann::json& object,
                                                   absl::string_view field,
                                                   absl::string_view what) {
  const nlohmann::json* v = Member(object, field);
  if (v == nullptr) return std::optional<int64_t>();
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() &&
        v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": field \"", field, "\" is out of range"));
    }
    return std::optional<int64_t>(v->get<int64_t>());
  }
  return WrongType(*v, field, what, "integer");
}

absl::StatusOr<int64_t> Int(const nlohmann::json& object,
                            absl::string_view field, absl::string_view what) {
  auto v = OptionalInt(object, field, what);
  if (!v.ok()) return v.status();
  if (!v->has_value()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": field \"", field, "\" is missing"));
  }
  return **v;
}

absl::StatusOr<std::optional<bool>> OptionalBool(const nlohmann::json& object,
                                                 absl::string_view field,
                                                 absl::string_view what) {
  const nlohmann::json* v = Member(object, field);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return WrongType(*v, field, what, "boolean");
  return std::optional<bool>(v->get<bool>());
}

absl::StatusOr<const nlohmann::json*> OptionalObject(
    const nlohmann::json& object, absl::string_view field,
    absl::string_view what) {
  const nlohmann::json* v = Member(object, field);
  if (v != nullptr && !v->is_object()) {
    return WrongType(*v, field, what, "object");
  }
  return v;
}

absl::StatusOr<const nlohmann::json*> OptionalArray(
    const nlohmann::json& object, absl::string_view field,
    absl::string_view what) {
  const nlohmann::json* v = Member(object, field);
  if (v != nullptr && !v->is_array()) {
    return WrongType(*v, field, what, "array");
  }
  return v;
}

}  // namespace stagefarm::json
