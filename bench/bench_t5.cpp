// `turbodiff bench t5`: the umT5 encoder at real XXL shapes (or --config). Per weight format (bf16, int8): build
// time (random weights generated on the GPU, or --weights loaded from the page cache), the time to encode a
// --tokens-long prompt (wall clock, includes the embedding gather and the copies in and out), and peak GPU memory.
#include <chrono>
#include <cstdio>
#include <memory>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "model/t5/t5_encoder.h"

namespace {

struct Args {
  bool random_weights = false;
  std::string weights, config, device = "auto", formats = "bf16,int8";
  int tokens = 512, iters = 10, warmup = 2;
};

td::cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_flag("--random-weights", a->random_weights, "random weights (generated on the device), no file needed");
  app.add_option("--weights", a->weights, "umT5 encoder checkpoint (measures load time from the page cache)");
  app.add_option("--config", a->config, "T5Encoder arguments as JSON (default: umT5-XXL)");
  app.add_option("--tokens", a->tokens, "prompt length in tokens (<= 512 for Wan)");
  app.add_option("--iters", a->iters, "timed iterations");
  app.add_option("--formats", a->formats, "comma-separated: bf16,int8");
  td::cli::add_device_option(app, &a->device);
  return [a]() {
    TD_CHECK(a->random_weights || !a->weights.empty(), "--weights", "give --weights FILE or --random-weights");
    TD_CHECK(a->tokens >= 1, "--tokens", "must be >= 1");
    td::T5Config cfg = a->config.empty() ? td::T5Config() : td::T5Config::from_json_file(a->config);
    const bool cuda = td::cli::resolve_device(a->device) == 1;
    std::printf("t5 bench: %s, %s, %d tokens\n", cfg.describe().c_str(), td::bench::device_description().c_str(),
                a->tokens);
    std::vector<int32_t> ids;
    for (int i = 0; i < a->tokens - 1; i++) ids.push_back(int32_t(3 + (i * 7919) % (cfg.vocab - 3)));
    ids.push_back(1);
    for (const char* fmt : {"bf16", "int8"}) {
      if (a->formats.find(fmt) == std::string::npos) continue;
      td::T5Options opt;
      opt.device = cuda ? td::Device::CUDA : td::Device::CPU;
      opt.int8 = std::string(fmt) == "int8";
      if (cuda) {
        td::device_empty_cache();
        td::bench::reset_peak_device_bytes();
      }
      auto t0 = std::chrono::steady_clock::now();
      std::unique_ptr<td::T5Encoder> enc = a->random_weights ? td::T5Encoder::random(cfg, opt, 1234)
                                                             : td::T5Encoder::load(a->weights, cfg, opt);
      if (cuda) td::device_synchronize();
      double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      td::bench::Timing t = td::bench::time_it([&] { enc->encode(ids); }, a->warmup, a->iters, false);
      std::printf("  %-4s  %s %.2f s   encode %d tokens: median %.2f ms (min %.2f, max %.2f)", fmt,
                  a->random_weights ? "generate" : "load", build_s, a->tokens, t.median_ms, t.min_ms, t.max_ms);
      if (cuda)
        std::printf("   weights %s, peak GPU %s", td::bench::fmt_bytes(enc->device_weight_bytes()).c_str(),
                    td::bench::fmt_bytes(td::bench::peak_device_bytes()).c_str());
      std::printf("\n");
      enc.reset();
      if (cuda) td::device_empty_cache();
    }
    return 0;
  };
}

td::cli::BenchCase reg("t5", "umT5 text encoder: encode time, load time, peak GPU memory (bf16 and int8)", setup);

}  // namespace
