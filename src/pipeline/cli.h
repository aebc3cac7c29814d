// The options of `turbodiff t2v` / `turbodiff i2v`, shared by both commands (tools/turbodiff/cmd_{t2v,i2v}.cpp)
// and testable without the executable.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "pipeline/options.h"

namespace td {
namespace pipeline {

struct CliState {
  GenerateOptions opts;
  std::string attention = "sagesla", linear = "auto", sampler = "rcm", size, model_dir, device = "auto";
  std::string t5_config, dit_config;
  bool t5_int8 = false, no_progress = false, no_cuda_graph = false;
  // Whether the user gave these (defaults differ per mode/sampler).
  CLI::Option *steps_opt = nullptr, *sigma_opt = nullptr, *res_opt = nullptr, *neg_opt = nullptr;
};

// Adds every option to `app` for `mode`, writing into `st`.
void add_generate_options(CLI::App& app, Mode mode, CliState& st);

// After parsing: applies mode/sampler defaults, parses enums, applies --model-dir. td::Error naming the flag.
// Returns the --model-dir lines ("--dit = path") for the report.
std::vector<std::string> finalize_options(CliState& st, Mode mode);

// The whole command: preflight checks, the run, the report on stdout (--json) or stderr, the output path on stdout.
int run_generate_command(CliState& st, Mode mode);

}  // namespace pipeline
}  // namespace td
