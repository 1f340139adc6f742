// Command-line options that take a byte size (common/byte_size.h), the one
// way every program's byte-size flags are parsed: `--memory 256m`.
#ifndef STAGEFARM_COMMON_BYTE_SIZE_FLAG_H_
#define STAGEFARM_COMMON_BYTE_SIZE_FLAG_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/byte_size.h"

namespace stagefarm {

// A CLI11 transform: the option's text becomes its number of bytes, or
// the option fails with ParseByteSize's message (CLI11 names the flag).
inline CLI::Validator ByteSize() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        absl::StatusOr<int64_t> bytes = ParseByteSize(value);
        if (!bytes.ok()) return std::string(bytes.status().message());
        value = absl::StrCat(*bytes);
        return "";
      },
      "SIZE", "byte size");
}

// Adds `name` to `app`, read into `bytes` as a byte size.
inline CLI::Option* AddByteSizeOption(CLI::App* app, const std::string& name,
                                      int64_t* bytes, const std::string& help) {
  return app->add_option(name, *bytes, help)->transform(ByteSize());
}

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_BYTE_SIZE_FLAG_H_
