#include "pipeline/checks.h"

#include "core/error.h"
#include "core/log.h"
#include "io/key_names.h"
#include "io/tensor_map.h"
#include "model/tokenizer/tokenizer.h"
#include "pipeline/t2v.h"

namespace td {
namespace pipeline {

static void note(std::vector<std::string>* notes, const std::string& s) {
  log_warn(s);
  if (notes) notes->push_back(s);
}

DitCheck check_dit_checkpoint(const std::string& path, const std::string& flag, const GenerateOptions& o,
                              std::vector<std::string>* notes) {
  TensorMap raw;
  try {
    raw = load_checkpoint(path);
  } catch (const Error& e) {
    fail(flag, e.what());
  }
  TensorMap m = normalize_dit_keys(raw);
  DitCheck c;
  try {
    c.config = DitConfig::resolve("", path, &m);
  } catch (const Error& e) {
    fail(flag, cat(e.what(), " (is this a Wan DiT checkpoint?)"));
  }
  int blocks_with_proj_l = 0;
  for (auto& kv : m.all()) {
    const std::string& n = kv.first;
    if (n.find(".int8_weight") != std::string::npos) c.quantized = true;
    if (n.find("local_attn.proj_l.weight") != std::string::npos) blocks_with_proj_l++;
  }
  c.has_proj_l = blocks_with_proj_l > 0;

  const int64_t y = c.config.y_dim();
  if (o.mode == Mode::T2V)
    TD_CHECK(y == 0, flag, path, " is an image-to-video model (in_dim ", c.config.in_dim,
             "); use `turbodiff i2v` with --dit-high/--dit-low");
  else
    TD_CHECK(y == 20, flag, path, " is not a Wan2.2 image-to-video expert (in_dim ", c.config.in_dim,
             ", expected 36 = 16 noise + 4 mask + 16 image latent)");

  if (o.attention != AttentionMode::Dense && !c.has_proj_l)
    note(notes, cat(flag, ": ", path, " has no SLA proj_l weights (not an SLA-tuned TurboDiffusion checkpoint); --attention ",
                    attention_mode_name(o.attention),
                    " will run without the linear branch and quality will suffer. Use --attention dense for "
                    "original Wan / rCM-only weights"));
  else if (c.has_proj_l && blocks_with_proj_l != c.config.num_layers)
    note(notes, cat(flag, ": only ", blocks_with_proj_l, " of ", c.config.num_layers, " blocks have proj_l weights"));
  if (o.attention == AttentionMode::Dense && c.has_proj_l)
    note(notes, cat(flag, ": SLA-tuned checkpoint run with --attention dense: its proj_l weights are unused"));
  if (o.linear == LinearMode::BF16 && c.quantized)
    note(notes, cat(flag, ": -quant (int8) checkpoint with --linear bf16: weights are dequantized at load"));
  if (o.linear == LinearMode::W8A8 && !c.quantized)
    note(notes, cat(flag, ": float checkpoint with --linear w8a8: block linears are quantized at load"));
  if (o.sampler != SamplerKind::RCM && c.has_proj_l)
    note(notes, cat(flag, ": ", path, " looks like a distilled TurboDiffusion model; --sampler ",
                    sampler_name(o.sampler), " is meant for original Wan weights (use --sampler rcm)"));
  return c;
}

void check_vae_checkpoint(const std::string& path, Mode mode) {
  TensorMap m;
  try {
    m = load_checkpoint(path);
  } catch (const Error& e) {
    fail("--vae", e.what());
  }
  TD_CHECK(m.has("decoder.conv1.weight") && m.has("conv2.weight"), "--vae", path,
           " has no Wan VAE decoder (decoder.conv1.weight / conv2.weight missing)");
  if (mode == Mode::I2V)
    TD_CHECK(m.has("encoder.conv1.weight") && m.has("conv1.weight"), "--vae", path,
             " has no Wan VAE encoder (encoder.conv1.weight / conv1.weight missing), which i2v needs");
}

static void check_text_encoder(const std::string& t5, const std::string& tokenizer) {
  TensorMap m;
  try {
    m = load_checkpoint(t5);
  } catch (const Error& e) {
    fail("--t5", e.what());
  }
  const Tensor* emb = m.find("token_embedding.weight");
  if (!emb) emb = m.find("shared.weight");
  if (!emb) emb = m.find("encoder.embed_tokens.weight");
  TD_CHECK(emb && emb->dim() == 2, "--t5", t5, " has no umT5 token embedding (token_embedding.weight / shared.weight)");
  T5Tokenizer tok(tokenizer);
  tok.check_embedding_rows(emb->size(0), t5);
}

std::vector<std::string> preflight(const GenerateOptions& o) {
  std::vector<std::string> notes;
  if (o.mode == Mode::T2V) validate_options(o, requested_size(o));  // i2v sizes need the image: checked in run_i2v
  check_files(o);
  if (o.mode == Mode::T2V) {
    check_dit_checkpoint(o.dit, "--dit", o, &notes);
  } else {
    const std::string high = o.dit_high.empty() ? o.dit : o.dit_high, low = o.dit_low.empty() ? o.dit : o.dit_low;
    DitCheck h = check_dit_checkpoint(high, "--dit-high", o, &notes);
    DitCheck l = check_dit_checkpoint(low, "--dit-low", o, &notes);
    TD_CHECK(h.config.dim == l.config.dim && h.config.num_layers == l.config.num_layers, "--dit-low",
             "the two experts differ in size (", h.config.summary(), " vs ", l.config.summary(), ")");
    if (high == low) note(&notes, "i2v: one checkpoint serves as both the high- and the low-noise expert");
  }
  check_vae_checkpoint(o.vae, o.mode);
  check_text_encoder(o.t5, o.tokenizer);
  return notes;
}

}  // namespace pipeline
}  // namespace td
