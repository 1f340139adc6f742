// Prints a parse in BuildKit's `Node.Dump()` line format (the "result" files
// of BuildKit's parser test cases): one "(keyword [flags] args...)" line per
// instruction. Pure; thread-safe.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_DUMP_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_DUMP_H_

#include <string>

#include "frontend/dockerfile/parser.h"

namespace stagefarm::dockerfile {

// The dump with one trailing newline, as the corpus's result files hold it.
std::string DumpBuildkitResult(const ParsedDockerfile& parsed);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_DUMP_H_
