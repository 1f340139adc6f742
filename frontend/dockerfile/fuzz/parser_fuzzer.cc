// libFuzzer target: any bytes as a Dockerfile through the parser, the dump,
// the instruction layer and the planner. Errors are fine; crashes, hangs and
// sanitizer reports are not.
#include <cstddef>
#include <cstdint>
#include <string>

#include "frontend/dockerfile/dump.h"
#include "frontend/dockerfile/instructions.h"
#include "frontend/dockerfile/parser.h"
#include "frontend/dockerfile/plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stagefarm::dockerfile;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = Parse(text, "fuzz");
  if (!parsed.ok()) return 0;
  std::string dump = DumpBuildkitResult(*parsed);
  auto instructions = ToInstructions(*parsed, "fuzz");
  if (!instructions.ok()) return 0;
  PlanOptions options;
  options.build_args["A"] = "x";
  auto plan = MakePlan(*instructions, options, "fuzz");
  (void)plan;
  (void)dump;
  return 0;
}
