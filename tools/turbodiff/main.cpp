// turbodiff: the command-line entry point. Parses the subcommand and runs it; every td::Error becomes
// "error: <subject>: <message>" on stderr and exit code 1 (2 for usage errors).
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"

namespace td {
namespace cli {

namespace {
struct Entry {
  std::string name, help;
  Setup setup;
};
std::vector<Entry>& commands() {
  static std::vector<Entry> v;
  return v;
}
std::vector<Entry>& bench_cases() {
  static std::vector<Entry> v;
  return v;
}
}  // namespace

Command::Command(const char* name, const char* help, Setup setup) {
  commands().push_back({name, help, std::move(setup)});
}
BenchCase::BenchCase(const char* name, const char* help, Setup setup) {
  bench_cases().push_back({name, help, std::move(setup)});
}

void add_device_option(CLI::App& app, std::string* device) {
  app.add_option("--device", *device, "cpu, cuda, or auto (cuda when a GPU is present)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

int resolve_device(const std::string& device) {
  if (device == "cpu") return 0;
  if (device == "cuda") {
    TD_CHECK(cuda_available(), "--device cuda", "no usable CUDA device (or this build has no CUDA backend)");
    return 1;
  }
  return cuda_available() ? 1 : 0;
}

}  // namespace cli
}  // namespace td

int main(int argc, char** argv) {
  using namespace td::cli;
  CLI::App app{"turbodiff: fast Wan2.1/2.2 video diffusion (TurboDiffusion) in C++/CUDA"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "turbodiff 0.1.0");
  int threads = 0;
  bool quiet = false, verbose = false;
  app.add_option("--threads", threads, "CPU threads (default: all cores, or TD_NUM_THREADS)");
  app.add_flag("-q,--quiet", quiet, "only warnings and errors on stderr");
  app.add_flag("-v,--verbose", verbose, "debug logging");

  std::map<CLI::App*, std::shared_ptr<Runner>> runners;
  auto sort_by_name = [](std::vector<Entry>& v) {
    std::sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  };
  sort_by_name(commands());
  sort_by_name(bench_cases());
  try {
    for (auto& c : commands()) {
      CLI::App* sub = app.add_subcommand(c.name, c.help);
      runners[sub] = std::make_shared<Runner>(c.setup(*sub));
    }
    if (!bench_cases().empty()) {
      CLI::App* bench = app.add_subcommand("bench", "Benchmarks at real model shapes (not tests)");
      bench->require_subcommand(1);
      for (auto& c : bench_cases()) {
        CLI::App* sub = bench->add_subcommand(c.name, c.help);
        runners[sub] = std::make_shared<Runner>(c.setup(*sub));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (threads > 0) td::set_num_threads(threads);
  if (quiet) td::set_log_level(td::LogLevel::Warn);
  if (verbose) td::set_log_level(td::LogLevel::Debug);

  try {
    for (auto& kv : runners)
      if (kv.first->parsed()) return (*kv.second)();
  } catch (const td::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "error: no command chosen (see --help)\n");
  return 2;
}
