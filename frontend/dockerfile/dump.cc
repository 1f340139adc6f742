#include "frontend/dockerfile/dump.h"

#include "frontend/dockerfile/text.h"

namespace stagefarm::dockerfile {
namespace {

std::string DumpNode(const Node& node) {
  std::string out = node.LowerKeyword();
  if (!node.flags.empty()) {
    out += " [";
    for (size_t i = 0; i < node.flags.size(); ++i) {
      if (i > 0) out += " ";
      out += GoQuote(node.flags[i]);
    }
    out += "]";
  }
  if (node.inner) out += " (" + DumpNode(*node.inner) + ")";
  if (node.ignored_args) out += " \"\"";
  for (const std::string& arg : node.args) out += " " + GoQuote(arg);
  return std::string(TrimSpace(out));
}

}  // namespace

std::string DumpBuildkitResult(const ParsedDockerfile& parsed) {
  std::string out;
  for (const Node& child : parsed.children)
    out += "(" + DumpNode(child) + ")\n";
  return std::string(TrimSpace(out)) + "\n";
}

}  // namespace stagefarm::dockerfile
