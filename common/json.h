// The one way this tree reads and writes JSON with nlohmann::json, without
// exceptions. Writing: strings are user bytes and need not be UTF-8; JSON
// text must be, so each byte that does not start a valid UTF-8 sequence is
// written as U+FFFD, exactly as Go's encoding/json writes it (what Docker,
// BuildKit and runc produce for the same bytes). Reading: text that is not
// JSON, and fields of the wrong type, are errors that name the field.
// Thread-safe (no shared state).
#ifndef STAGEFARM_COMMON_JSON_H_
#define STAGEFARM_COMMON_JSON_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace stagefarm::json {

// `value` as JSON text; `indent` < 0 is compact. Never throws.
std::string Dump(const nlohmann::json& value, int indent = -1);

// `bytes` with every byte that does not start a valid UTF-8 sequence
// replaced by U+FFFD (Go's strings.ToValidUTF8 per byte, as encoding/json).
std::string ValidUtf8(absl::string_view bytes);
bool IsValidUtf8(absl::string_view bytes);

// Parses `text`; an error says what it was (`what`: "manifest", ...) and
// where the text stopped being JSON. Never throws.
absl::StatusOr<nlohmann::json> Parse(absl::string_view text,
                                     absl::string_view what);

// Typed members of an object. A member of another type is
// INVALID_ARGUMENT naming `what` and the field; a missing (or null)
// member is NOT_FOUND for the plain forms and nullopt for Optional*.
// `object` that is not an object counts as having no members.
absl::StatusOr<std::string> String(const nlohmann::json& object,
                                   absl::string_view field,
                                   absl::string_view what);
absl::StatusOr<std::optional<std::string>> OptionalString(
    const nlohmann::json& object, absl::string_view field,
    absl::string_view what);
absl::StatusOr<int64_t> Int(const nlohmann::json& object,
                            absl::string_view field, absl::string_view what);
absl::StatusOr<std::optional<int64_t>> OptionalInt(const nlohmann::json& object,
                                                   absl::string_view field,
                                                   absl::string_view what);
absl::StatusOr<std::optional<bool>> OptionalBool(const nlohmann::json& object,
                                                 absl::string_view field,
                                                 absl::string_view what);
// Objects and arrays are returned by pointer into `object` (nullptr when
// missing or null); another type is INVALID_ARGUMENT.
absl::StatusOr<const nlohmann::json*> OptionalObject(
    const nlohmann::json& object, absl::string_view field,
    absl::string_view what);
absl::StatusOr<const nlohmann::json*> OptionalArray(
    const nlohmann::json& object, absl::string_view field,
    absl::string_view what);

// The JSON type's name as errors print it ("string", "number", ...).
const char* TypeName(const nlohmann::json& value);

}  // namespace stagefarm::json

#endif  // STAGEFARM_COMMON_JSON_H_
