#include "common/byte_size.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace stagefarm {
namespace {

// The multiplier of a unit letter (lower case), 0 when it is none.
int64_t UnitMultiplier(char unit) {
  switch (unit) {
    case 'k':
      return int64_t{1} << 10;
    case 'm':
      return int64_t{1} << 20;
    case 'g':
      return int64_t{1} << 30;
    case 't':
      return int64_t{1} << 40;
    case 'p':
      return int64_t{1} << 50;
    default:
      return 0;
  }
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    absl::string_view shown = text.substr(0, 64);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid size \"", absl::CHexEscape(shown),
                     shown.size() < text.size() ? "..." : "", "\": ", why,
                     " (a number of bytes, or with a unit: 512k, 256m, 1g)"));
  };
  // The number: digits with at most one '.', then an optional space.
  size_t end = 0;
  bool dot = false;
  while (end < text.size() &&
         (absl::ascii_isdigit(text[end]) || (text[end] == '.' && !dot))) {
    dot = dot || text[end] == '.';
    ++end;
  }
  absl::string_view number = text.substr(0, end);
  absl::string_view suffix = text.substr(end);
  if (number.empty() || number == ".") {
    return bad(text.empty() ? "empty" : "no number");
  }
  if (!suffix.empty() && suffix[0] == ' ') suffix.remove_prefix(1);
  std::string unit = absl::AsciiStrToLower(suffix);
  int64_t multiplier = 1;
  if (!unit.empty() && unit != "b") {
    multiplier = UnitMultiplier(unit[0]);
    absl::string_view after = absl::string_view(unit).substr(1);
    if (multiplier == 0 || (after != "" && after != "b" && after != "ib")) {
      return bad(absl::StrCat("unknown unit \"", absl::CHexEscape(suffix),
                              "\" (b, k, m, g, t or p)"));
    }
  }
  auto too_big = [&] {
    return absl::OutOfRangeError(
        absl::StrCat("size \"", absl::CHexEscape(text.substr(0, 64)),
                     "\" is too large (at most 2^63-1 bytes)"));
  };
  if (!dot) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(number, &n) ||
        n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() /
                                  multiplier)) {
      return too_big();
    }
    return static_cast<int64_t>(n) * multiplier;
  }
  double n = 0;
  if (!absl::SimpleAtod(number, &n) || !std::isfinite(n)) {
    return bad("not a number");
  }
  double bytes = std::floor(n * static_cast<double>(multiplier));
  // 2^63 is exactly representable; anything at or past it does not fit.
  if (bytes >= 9223372036854775808.0) return too_big();
  return static_cast<int64_t>(bytes);
}

std::string FormatBinaryBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B",   "KiB", "MiB",
                                           "GiB", "TiB", "PiB"};
  int unit = 0;
  double value = static_cast<double>(bytes);
  while (unit < 5 && (value >= 1024 || value <= -1024)) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  std::string text = absl::StrFormat("%.2f", value);
  // "256.00" -> "256", "1.50" -> "1.5".
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return absl::StrCat(text, " ", kUnits[unit]);
}

}  // namespace stagefarm
