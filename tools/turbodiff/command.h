// Subcommand registry. Each tools/turbodiff/cmd_*.cpp (and bench/bench_*.cpp) registers itself at static-init time:
//
//   static td::cli::Command reg("dit", "Run one DiT forward on saved inputs", setup_dit);
//
// `setup` adds options to its CLI11 subcommand and returns the function run when it is chosen. Bench cases register
// under `turbodiff bench <name>` with td::cli::BenchCase the same way. The executable links these objects directly,
// so static registration is reliable.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace td {
namespace cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;

struct Command {
  Command(const char* name, const char* help, Setup setup);
};
struct BenchCase {
  BenchCase(const char* name, const char* help, Setup setup);
};

// Shared option helpers so every tool spells common flags the same way.
struct DeviceOpt {
  std::string device = "auto";  // auto = cuda when available
};
void add_device_option(CLI::App& app, std::string* device);
// Resolves "auto"/"cpu"/"cuda" to a td::Device (int to keep this header light: 0 cpu, 1 cuda); errors name --device.
int resolve_device(const std::string& device);

}  // namespace cli
}  // namespace td
