// `turbodiff t2v`: text to video. Options and the run live in src/pipeline/cli.cpp (shared with i2v and tested).
#include "command.h"
#include "pipeline/cli.h"

namespace {

td::cli::Runner setup(CLI::App& app) {
  auto st = std::make_shared<td::pipeline::CliState>();
  td::pipeline::add_generate_options(app, td::pipeline::Mode::T2V, *st);
  app.footer(
      "Example:\n  turbodiff t2v --model-dir checkpoints -p \"a corgi surfing a wave at sunset\" -o corgi.mp4\n"
      "  turbodiff t2v --dit TurboWan2.1-T2V-1.3B-480P-quant.pth --t5 models_t5_umt5-xxl-enc-bf16.pth \\\n"
      "      --tokenizer google/umt5-xxl/spiece.model --vae Wan2.1_VAE.pth -p \"...\"\n"
      "Original Wan weights: --sampler unipc --attention dense (50 steps, CFG 5, shift 5).");
  return [st]() { return td::pipeline::run_generate_command(*st, td::pipeline::Mode::T2V); };
}

td::cli::Command reg("t2v", "Generate a video from a text prompt (TurboDiffusion rCM, or Wan's teacher samplers)",
                     setup);

}  // namespace
