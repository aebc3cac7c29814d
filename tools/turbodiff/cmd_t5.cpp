// `turbodiff t5`: tokenizes a prompt as Wan does and runs the umT5 encoder; writes ids (i32 [L]) and emb
// (f32 [L, dim]) for the L real tokens including '</s>'. Repeated prompts come from the embedding cache.
#include <chrono>
#include <cstdio>
#include <memory>

#include "command.h"
#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/embedding_cache.h"
#include "io/safetensors.h"
#include "model/t5/t5_encoder.h"
#include "model/tokenizer/tokenizer.h"

namespace {

struct Args {
  std::string weights, tokenizer, prompt, output, config, cache_dir, device = "auto";
  bool int8 = false, no_cache = false;
};

td::cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--weights", a->weights, "umT5 encoder checkpoint (models_t5_umt5-xxl-enc-bf16.pth or safetensors)")
      ->required();
  app.add_option("--tokenizer", a->tokenizer, "SentencePiece model of google/umt5-xxl (spiece.model)")->required();
  app.add_option("--prompt", a->prompt, "the text prompt")->required();
  app.add_option("--output", a->output, "safetensors file to write (ids, emb)")->required();
  app.add_option("--config", a->config, "JSON with the T5Encoder arguments (default: umT5-XXL)");
  app.add_flag("--t5-int8", a->int8, "INT8 weight-only encoder (half the GPU memory, small error)");
  app.add_flag("--no-cache", a->no_cache, "neither read nor write the prompt-embedding cache");
  app.add_option("--cache-dir", a->cache_dir, "prompt-embedding cache directory (default: $XDG_CACHE_HOME/turbodiff)");
  td::cli::add_device_option(app, &a->device);
  return [a]() {
    using clock = std::chrono::steady_clock;
    td::check_output_path(a->output, "--output");
    td::T5Config cfg = a->config.empty() ? td::T5Config() : td::T5Config::from_json_file(a->config);
    td::T5Tokenizer tok(a->tokenizer);
    tok.check_embedding_rows(cfg.vocab, a->config.empty() ? "umT5-XXL (the default --config)" : a->config);
    td::TokenizedPrompt tp = tok.tokenize(a->prompt);
    td::log_info("prompt: ", tp.ids.size(), " tokens");

    td::T5Options opt;
    opt.device = td::cli::resolve_device(a->device) ? td::Device::CUDA : td::Device::CPU;
    opt.int8 = a->int8;
    td::EmbeddingCacheKey key{td::file_identity(a->weights) + "|" + cfg.describe(), tp.cleaned, a->int8};
    td::EmbeddingCache cache(a->cache_dir.empty() ? td::default_cache_dir() : a->cache_dir);

    std::vector<int32_t> ids;
    td::Tensor emb;
    bool hit = !a->no_cache && cache.lookup(key, &ids, &emb) && ids == tp.ids;
    if (hit) {
      td::log_info("embedding cache hit: ", cache.entry_path(key));
    } else {
      auto t0 = clock::now();
      auto enc = td::T5Encoder::load(a->weights, cfg, opt);
      auto t1 = clock::now();
      emb = enc->encode(tp.ids);
      auto t2 = clock::now();
      enc.reset();  // frees the encoder's memory before anything else runs
      td::log_info("t5: load ", std::chrono::duration<double>(t1 - t0).count(), " s, encode ",
                   std::chrono::duration<double, std::milli>(t2 - t1).count(), " ms (", td::device_name(opt.device),
                   a->int8 ? ", int8" : "", ")");
      ids = tp.ids;
      if (!a->no_cache) cache.store(key, ids, emb);
    }
    td::Tensor ti = td::Tensor::empty({int64_t(ids.size())}, td::DType::I32);
    for (size_t i = 0; i < ids.size(); i++) ti.ptr<int32_t>()[i] = ids[i];
    td::save_safetensors(a->output, {{"ids", ti}, {"emb", emb}},
                         {{"prompt", a->prompt}, {"cleaned_prompt", tp.cleaned}, {"int8", a->int8 ? "1" : "0"}});
    std::printf("wrote %s: ids [%zu], emb [%lld, %lld]%s\n", a->output.c_str(), ids.size(),
                (long long)emb.size(0), (long long)emb.size(1), hit ? " (cached)" : "");
    return 0;
  };
}

td::cli::Command reg("t5", "Encode a prompt with the umT5 text encoder", setup);

}  // namespace
