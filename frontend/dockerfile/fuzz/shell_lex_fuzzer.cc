// libFuzzer target: variable expansion and word splitting of any bytes,
// with both escape tokens and the raw modes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "frontend/dockerfile/shell_lex.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stagefarm::dockerfile;
  if (size == 0) return 0;
  std::string word(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> env = {"PWD=/home", "EMPTY=", "LIST=a b  c",
                                  "PATH=/usr/local/bin:/usr/bin"};
  ShellLexOptions options;
  options.escape = (data[0] & 1) ? '`' : '\\';
  options.raw_quotes = data[0] & 2;
  options.raw_escapes = data[0] & 4;
  options.skip_unset = data[0] & 8;
  ShellLex lex(options);
  auto one = lex.ProcessWord(word, EnvFromList(&env));
  auto many = lex.ProcessWords(word, EnvFromList(&env));
  auto names = lex.ReferencedNames(word);
  (void)one;
  (void)many;
  (void)names;
  return 0;
}
