#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "common/channel.h"
#include "frontend/dockerfile/dump.h"
#include "frontend/dockerfile/parser.h"
#include "frontend/dockerfile/plan.h"
#include "frontend/dockerfile/plan_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "platform/emulation.h"

namespace stagefarm::cli {
namespace {

// Reads a whole regular file; a clear error for anything else.
absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(path + (std::filesystem::exists(path, ec)
                                           ? ": not a regular file"
                                           : ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError("cannot read " + path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

int ParseCommand(const std::string& file, const std::string& format) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    absl::StatusOr<std::string> read = ReadFileToString(file);
    if (!read.ok()) return Fail(read.status());
    text = std::move(*read);
  }
  absl::StatusOr<dockerfile::ParsedDockerfile> parsed =
      dockerfile::Parse(text, file == "-" ? "<stdin>" : file);
  if (!parsed.ok()) {
    std::cerr << "stagefarm: " << parsed.status().message() << "\n";
    return 1;
  }
  if (format == "buildkit-result") {
    std::cout << dockerfile::DumpBuildkitResult(*parsed);
    return 0;
  }
  for (const dockerfile::Node& node : parsed->children) {
    std::cout << node.start_line << "-" << node.end_line << "\t"
              << node.original << "\n";
  }
  return 0;
}

struct PlanFlags {
  std::string file;
  std::string target;
  std::vector<std::string> build_args;
  std::string format = "text";
  std::string context = ".";
};

int PlanCommand(const PlanFlags& flags) {
  std::string path =
      flags.file.empty() ? flags.context + "/Dockerfile" : flags.file;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return Fail(text.status());
  dockerfile::PlanOptions options;
  options.target = flags.target;
  for (const std::string& kv : flags.build_args) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      // Docker takes the value from the environment for a bare name.
      const char* env = std::getenv(kv.c_str());
      if (env != nullptr) options.build_args[kv] = env;
      continue;
    }
    options.build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  absl::StatusOr<dockerfile::Plan> plan =
      dockerfile::PlanDockerfile(*text, options, path);
  if (!plan.ok()) {
    std::cerr << "stagefarm: " << plan.status().message() << "\n";
    return 1;
  }
  for (const std::string& w : plan->warnings)
    std::cerr << "warning: " << w << "\n";
  if (flags.format == "json") {
    std::cout << dockerfile::PlanAsJson(*plan);
  } else if (flags.format == "dot") {
    std::cout << dockerfile::PlanAsDot(*plan);
  } else {
    std::cout << dockerfile::PlanAsText(*plan);
  }
  return 0;
}

// Asks a daemon's grpc.health.v1 service; exit 0 when it is SERVING.
int HealthCommand(const std::string& address, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(FarmChannel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) {
    std::cerr << "stagefarm: health of " << address << ": " << s.error_message()
              << "\n";
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                   resp.status())
            << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0
                                                                         : 1;
}

// `stagefarm emulation status`: the platforms this machine runs, and how.
int EmulationStatusCommand() {
  std::cout << "PLATFORM\tHOW\tUSABLE IN A SANDBOX\n";
  for (const platform::Runner& r : platform::Runners()) {
    std::string how = "native";
    if (!r.native) {
      how = absl::StrCat(r.handler, " ", r.interpreter,
                         r.enabled ? "" : " (disabled)", " flags ", r.flags);
    }
    std::cout << r.platform.String() << "\t" << how << "\t"
              << (r.usable() ? "yes" : "no") << "\n";
  }
  return 0;
}

// `stagefarm emulation install`: registers Debian's qemu-user-static
// handlers with the F flag.
int EmulationInstallCommand() {
  auto installed = platform::Install();
  if (!installed.ok()) return Fail(installed.status());
  for (const platform::Platform& p : *installed) {
    std::cout << p.String() << "\n";
  }
  return 0;
}

}  // namespace

void AddInspectCommands(CLI::App* app, Commands* out) {
  struct Flags {
    std::string health_address, health_service;
    std::string parse_file, parse_format = "buildkit-result";
    PlanFlags plan_flags;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* health = app->add_subcommand(
      "health", "ask a farm daemon whether it serves (grpc.health.v1)");
  health->add_option("address", f->health_address, "HOST:PORT")->required();
  health->add_option("--service", f->health_service,
                     "the service to ask about (default: the whole server)");
  CLI::App* version = app->add_subcommand("version", "print the version");
  CLI::App* emulation = app->add_subcommand(
      "emulation", "the platforms this machine can build for");
  emulation->require_subcommand(1);
  CLI::App* emulation_status = emulation->add_subcommand(
      "status", "list native platforms and registered emulators");
  CLI::App* emulation_install = emulation->add_subcommand(
      "install",
      "register qemu-user-static's emulators with the F flag (root)");

  CLI::App* parse = app->add_subcommand(
      "parse", "parse a Dockerfile and print its instructions");
  parse->add_option("file", f->parse_file, "the Dockerfile (- for stdin)")
      ->required();
  parse
      ->add_option("--format", f->parse_format,
                   "buildkit-result (BuildKit's parser dump) or lines")
      ->check(CLI::IsMember({"buildkit-result", "lines"}));

  CLI::App* plan = app->add_subcommand(
      "plan",
      "print the stages of a build, what they depend on and the schedule");
  plan->add_option("-f,--file", f->plan_flags.file,
                   "the Dockerfile (default CONTEXT/Dockerfile)");
  plan->add_option("--target", f->plan_flags.target,
                   "the stage to build (default: the last)");
  plan->add_option("--build-arg", f->plan_flags.build_args,
                   "KEY=VALUE (repeatable)");
  plan->add_option("--format", f->plan_flags.format, "text, json or dot")
      ->check(CLI::IsMember({"text", "json", "dot"}));
  plan->add_option("context", f->plan_flags.context,
                   "the build context (default .)");

  out->push_back({health, [f] {
                    return HealthCommand(f->health_address, f->health_service);
                  }});
  out->push_back({version, [] {
                    std::cout << "stagefarm 0.1.0\n";
                    return 0;
                  }});
  out->push_back({emulation_status, [] { return EmulationStatusCommand(); }});
  out->push_back({emulation_install, [] { return EmulationInstallCommand(); }});
  out->push_back(
      {parse, [f] { return ParseCommand(f->parse_file, f->parse_format); }});
  out->push_back({plan, [f] { return PlanCommand(f->plan_flags); }});
}

}  // namespace stagefarm::cli
