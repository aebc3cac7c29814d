// Checks on the input files that run before any model is loaded: the DiT checkpoint matches the mode (t2v / i2v)
// and the chosen attention/linear modes, the VAE has the halves the mode needs, the tokenizer fits the encoder.
// Checkpoints are opened zero-copy (mmap), so these cost milliseconds even for 28 GB files.
#pragma once

#include <string>
#include <vector>

#include "model/dit/dit_config.h"
#include "pipeline/options.h"

namespace td {
namespace pipeline {

struct DitCheck {
  DitConfig config;
  bool quantized = false;  // TurboDiffusion -quant: int8 block linears
  bool has_proj_l = false;  // SLA-tuned: self_attn.attn_op.local_attn.proj_l in every block
};

// td::Error naming `flag` if the file is not a Wan DiT for `mode`; warnings (appended to `notes` and logged) for
// an attention/linear mismatch, e.g. sla/sagesla on a checkpoint without proj_l.
DitCheck check_dit_checkpoint(const std::string& path, const std::string& flag, const GenerateOptions& o,
                              std::vector<std::string>* notes);

// VAE: decoder weights present (and encoder ones for i2v). td::Error naming --vae.
void check_vae_checkpoint(const std::string& path, Mode mode);

// Runs every cheap check for a run: options, files, DiT/VAE/text-encoder/tokenizer consistency. Returns notes.
std::vector<std::string> preflight(const GenerateOptions& o);

}  // namespace pipeline
}  // namespace td
