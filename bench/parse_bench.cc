// parse_bench: parses and plans every Dockerfile of the corpus in memory,
// many times, and prints the average time per Dockerfile.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "frontend/dockerfile/plan.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::string shared = argc > 1 ? argv[1] : "../shared";
  int rounds = argc > 2 ? std::atoi(argv[2]) : 200;
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* dir :
       {"buildkit-parser", "real-dockerfiles", "real-multistage"}) {
    fs::path root = fs::path(shared) / "corpus" / dir;
    if (!fs::is_directory(root)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file() || entry.path().filename() != "Dockerfile")
        continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      files.emplace_back(entry.path().string(), ss.str());
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "parse_bench: no Dockerfiles under %s/corpus\n",
                 shared.c_str());
    return 2;
  }
  stagefarm::dockerfile::PlanOptions options;
  size_t bytes = 0, planned = 0, failed = 0;
  for (const auto& [path, text] : files) bytes += text.size();
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& [path, text] : files) {
      auto plan = stagefarm::dockerfile::PlanDockerfile(text, options, path);
      if (plan.ok()) {
        ++planned;
      } else {
        ++failed;
      }
    }
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  double per_file_us =
      secs * 1e6 / (static_cast<double>(files.size()) * rounds);
  std::printf("dockerfiles %zu\n", files.size());
  std::printf("average_bytes %zu\n", bytes / files.size());
  std::printf("planned_ok %zu\n", planned / rounds);
  std::printf("plan_errors %zu\n", failed / rounds);
  std::printf("parse_and_plan_us_per_dockerfile %.2f\n", per_file_us);
  std::printf("throughput_MBps %.1f\n", bytes * rounds / secs / 1e6);
  return 0;
}
