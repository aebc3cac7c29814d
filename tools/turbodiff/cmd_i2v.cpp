// `turbodiff i2v`: image to video with the Wan2.2 A14B expert pair. Options and the run: src/pipeline/cli.cpp.
#include "command.h"
#include "pipeline/cli.h"

namespace {

td::cli::Runner setup(CLI::App& app) {
  auto st = std::make_shared<td::pipeline::CliState>();
  td::pipeline::add_generate_options(app, td::pipeline::Mode::I2V, *st);
  app.footer(
      "Example:\n  turbodiff i2v --model-dir checkpoints -i first_frame.jpg -p \"the camera pans slowly\" --ode\n"
      "  turbodiff i2v --dit-high TurboWan2.2-I2V-A14B-high-720P-quant.pth --dit-low ...-low-720P-quant.pth \\\n"
      "      --t5 ... --tokenizer ... --vae Wan2.1_VAE.pth -i in.jpg -p \"...\" [--adaptive-resolution]");
  return [st]() { return td::pipeline::run_generate_command(*st, td::pipeline::Mode::I2V); };
}

td::cli::Command reg("i2v", "Generate a video from an image and a prompt (Wan2.2 A14B high/low-noise experts)", setup);

}  // namespace
