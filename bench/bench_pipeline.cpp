// `turbodiff bench pipeline`: the whole t2v pipeline (umT5 -> DiT sampling -> VAE decode -> MP4) at real shapes
// with random weights, and a per-stage table. Builds without FFmpeg write a PNG frame directory instead (the
// "video write" row then times PNG encoding, and the table says so).
//
//   turbodiff bench pipeline --config wan2.1-t2v-1.3b --random-weights [--compare-dense] [--resolution 480p]
//                            [--frames 81] [--steps 4] [--attention sagesla] [--topk 0.1] [--linear w8a8]
//                            [--iters 3] [--device cuda] [--phases]
//
// Each variant runs once as warm-up (model creation, first-call costs), then --iters timed runs; the table shows
// the median seconds of each stage. By default the models stay resident between runs so the timed runs measure
// steady-state stages (loads are reported once, from the warm-up); the peak GPU memory is then that of all models
// together. --phases creates and frees every model in each run exactly as `turbodiff t2v` does (peak memory as
// the CLI's; loads timed every run). --compare-dense adds the dense-attention, bf16-linear pipeline to the same run.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <unistd.h>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "io/video.h"
#include "model/dit/dit_config.h"
#include "pipeline/t2v.h"
#include "pipeline/wan_stages.h"

namespace {

using namespace td;
using namespace td::pipeline;

struct Args {
  std::string config = "wan2.1-t2v-1.3b", device = "cuda", attention = "sagesla", linear = "w8a8";
  std::string resolution = "480p", aspect = "16:9", size, output, t5_config;
  bool random_weights = false, compare_dense = false, phases = false, t5_int8 = false, keep_output = false;
  bool no_cuda_graph = false;
  int frames = 81, steps = 4, iters = 3;
  float topk = 0.1f;
  uint64_t seed = 0;
};

// Proxies that keep one shared model alive across runs (resident mode).
class TextProxy : public TextEncoder {
 public:
  explicit TextProxy(std::shared_ptr<TextEncoder> t) : t_(std::move(t)) {}
  Tensor encode(const std::string& p) override { return t_->encode(p); }
  std::shared_ptr<TextEncoder> t_;
};
class NetProxy : public Denoiser {
 public:
  explicit NetProxy(std::shared_ptr<Denoiser> n) : n_(std::move(n)) {}
  Tensor velocity(const Tensor& x, float t, const Tensor& c, const Tensor* y) override { return n_->velocity(x, t, c, y); }
  void prepare(const LatentShape& s, bool has_y) override { n_->prepare(s, has_y); }
  std::string describe() const override { return n_->describe(); }
  std::shared_ptr<Denoiser> n_;
};
class VaeProxy : public Vae {
 public:
  explicit VaeProxy(std::shared_ptr<Vae> v) : v_(std::move(v)) {}
  Tensor decode(const Tensor& z, const std::function<void(int, int)>& cb) override { return v_->decode(z, cb); }
  Tensor decode_streaming(const Tensor& z, const std::function<void(int, int)>& cb,
                          const std::function<void(const Tensor&, int64_t, int64_t)>& frames) override {
    return v_->decode_streaming(z, cb, frames);
  }
  Tensor encode(const Tensor& v) override { return v_->encode(v); }
  std::shared_ptr<Vae> v_;
};

StageFactory make_resident(StageFactory base) {
  auto text = std::make_shared<std::shared_ptr<TextEncoder>>();
  auto nets = std::make_shared<std::map<std::string, std::shared_ptr<Denoiser>>>();
  auto vae = std::make_shared<std::shared_ptr<Vae>>();
  StageFactory f = base;
  f.text_encoder = [base, text]() -> std::unique_ptr<TextEncoder> {
    if (!*text) *text = std::shared_ptr<TextEncoder>(base.text_encoder());
    return std::make_unique<TextProxy>(*text);
  };
  f.denoiser = [base, nets](const std::string& role, const std::string& path) -> std::unique_ptr<Denoiser> {
    auto& n = (*nets)[role];
    if (!n) n = std::shared_ptr<Denoiser>(base.denoiser(role, path));
    return std::make_unique<NetProxy>(n);
  };
  f.vae = [base, vae]() -> std::unique_ptr<Vae> {
    if (!*vae) *vae = std::shared_ptr<Vae>(base.vae());
    return std::make_unique<VaeProxy>(*vae);
  };
  f.release_memory = nullptr;  // nothing is freed between phases in resident mode
  return f;
}

// MP4 where the build has FFmpeg; otherwise a PNG frame directory, so the bench still runs every stage.
std::string default_output() {
  return ffmpeg_available() ? cat("/tmp/turbodiff_bench_pipeline_", ::getpid(), ".mp4")
                            : cat("/tmp/turbodiff_bench_pipeline_", ::getpid(), "_frames");
}

struct VariantResult {
  std::string name, denoiser;
  std::map<std::string, double> median_s;  // per stage
  std::map<std::string, double> load_s;    // from the warm-up run (resident) or the median (phases)
  size_t peak_gpu = 0;
};

const char* const kStages[] = {"text encode", "diffusion", "vae decode", "video write"};
const char* const kLoads[] = {"text load", "dit load", "vae load"};

VariantResult run_variant(const Args& a, const std::string& name, AttentionMode att, LinearMode lin, Device dev) {
  GenerateOptions o;
  o.prompt = "bench";  // random weights: the encoder sees a fixed 129-token prompt
  o.frames = a.frames;
  o.steps = a.steps;
  o.attention = att;
  o.topk = a.topk;
  o.linear = lin;
  o.seed = a.seed;
  o.progress = false;
  o.cuda_graph = !a.no_cuda_graph;
  o.resolution = a.resolution;
  o.aspect = a.aspect;
  if (!a.size.empty()) {
    Size s = parse_size(a.size);
    o.width = s.width;
    o.height = s.height;
  }
  o.output = a.output.empty() ? default_output() : a.output;
  WanStageOptions w;
  w.device = dev;
  w.random_weights = true;
  w.random_dit_preset = a.config;
  w.random_seed = a.seed;
  w.t5_int8 = a.t5_int8;
  if (!a.t5_config.empty()) w.t5_config = T5Config::from_json_file(a.t5_config);
  StageFactory base = make_wan_stages(o, w);
  StageFactory f = a.phases ? base : make_resident(base);

  VariantResult res;
  res.name = name;
  if (dev == Device::CUDA) device_reset_peak();
  std::fprintf(stderr, "bench pipeline: %s: warm-up run (creates the random models)...\n", name.c_str());
  GenerateReport warm = run_t2v(o, f);
  res.denoiser = warm.denoiser;
  std::map<std::string, std::vector<double>> per;
  for (int it = 0; it < a.iters; it++) {
    GenerateReport r = run_t2v(o, f);
    for (const char* s : kStages) per[s].push_back(r.stage_seconds(s));
    for (const char* s : kLoads) per[s].push_back(r.stage_seconds(s));
    res.peak_gpu = std::max(res.peak_gpu, r.peak_gpu_bytes);
  }
  for (auto& kv : per) res.median_s[kv.first] = bench::median(kv.second);
  for (const char* s : kLoads) res.load_s[s] = a.phases ? res.median_s[s] : warm.stage_seconds(s);
  res.peak_gpu = std::max(res.peak_gpu, dev == Device::CUDA ? device_peak_bytes() : size_t(0));
  if (!a.keep_output) {
    std::error_code ec;  // a file (MP4) or a frame directory
    std::filesystem::remove_all(o.output, ec);
  }
  return res;
}

int run(const Args& a) {
  TD_CHECK(a.random_weights, "--random-weights", "bench pipeline runs on random weights only (use `turbodiff t2v "
           "--json` to time real checkpoints)");
  const Device dev = cli::resolve_device(a.device) == 1 ? Device::CUDA : Device::CPU;
  DitConfig cfg = DitConfig::resolve(a.config, "", nullptr);
  TD_CHECK(cfg.model_type == "t2v", "--config", "bench pipeline times text-to-video presets, got ", a.config);
  TD_CHECK(a.iters >= 1, "--iters", "need at least one timed run");
  const std::string out = a.output.empty() ? default_output() : a.output;
  check_video_output(out, "-o");  // e.g. an .mp4 without FFmpeg: refused before any model is created
  const bool png = !video_is_container_path(out);

  std::vector<VariantResult> results;
  results.push_back(run_variant(a, cat(a.attention, "+", a.linear), parse_attention_mode(a.attention),
                                parse_linear_mode(a.linear), dev));
  if (a.compare_dense) results.push_back(run_variant(a, "dense+bf16", AttentionMode::Dense, LinearMode::BF16, dev));

  Size sz = a.size.empty() ? resolution_size(a.resolution, a.aspect) : parse_size(a.size);
  std::printf("bench pipeline: %s, %dx%d, %d frames, %d rCM steps, %s, %s, median of %d run(s)%s\n",
              a.config.c_str(), sz.width, sz.height, a.frames, a.steps, bench::device_description().c_str(),
              a.phases ? "models created per phase" : "models resident", a.iters,
              a.t5_int8 ? ", umT5 int8" : "");
  std::printf("%-26s", "stage (s)");
  for (auto& r : results) std::printf(" %16s", r.name.c_str());
  std::printf("\n");
  for (const char* s : kStages) {
    std::printf("%-26s", std::string(s) == "video write" && png ? "video write (PNG frames)" : s);
    for (auto& r : results) std::printf(" %16.3f", r.median_s[s]);
    std::printf("\n");
  }
  std::printf("%-26s", "  diffusion per step");
  for (auto& r : results) std::printf(" %16.3f", r.median_s["diffusion"] / a.steps);
  std::printf("\n%-26s", "end to end (excl. loads)");
  for (auto& r : results) {
    double e = 0;
    for (const char* s : kStages) e += r.median_s[s];
    std::printf(" %16.3f", e);
  }
  std::printf("\n");
  for (const char* s : kLoads) {
    std::printf("%-26s", cat(s, a.phases ? "" : " (once)").c_str());
    for (auto& r : results) std::printf(" %16.3f", r.load_s[s]);
    std::printf("\n");
  }
  std::printf("%-26s", "peak GPU memory");
  for (auto& r : results) std::printf(" %16s", bench::fmt_bytes(r.peak_gpu).c_str());
  std::printf("\n");
  for (auto& r : results) std::printf("%s: %s\n", r.name.c_str(), r.denoiser.c_str());
  std::printf("video write: frames are written while the VAE decodes; the row is what is left after the decode\n");
  if (png)
    std::printf("video write: PNG frame directory%s (no H.264 encode; MP4 times differ)\n",
                ffmpeg_available() ? "" : ", this build has no FFmpeg");
  return 0;
}

cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--config", a->config, "wan2.1-t2v-1.3b | wan2.1-t2v-14b, or a DiT config.json")->capture_default_str();
  app.add_flag("--random-weights", a->random_weights, "random weights at the real shapes (required)");
  app.add_flag("--compare-dense", a->compare_dense, "also run the dense-attention, bf16-linear pipeline");
  app.add_flag("--phases", a->phases, "create/free models per phase every run, as turbodiff t2v does");
  app.add_option("--resolution", a->resolution, "480p | 720p")->capture_default_str();
  app.add_option("--aspect", a->aspect, "16:9 | 9:16 | 4:3 | 1:1")->capture_default_str();
  app.add_option("--size", a->size, "WIDTHxHEIGHT instead of --resolution/--aspect");
  app.add_option("--frames", a->frames, "frames (1 + 4k)")->capture_default_str();
  app.add_option("--steps", a->steps, "rCM steps (1..4)")->capture_default_str();
  app.add_option("--attention", a->attention, "dense | sla | sagesla")->capture_default_str();
  app.add_option("--topk", a->topk, "sla/sagesla key-block fraction")->capture_default_str();
  app.add_option("--linear", a->linear, "bf16 | w8a8 | auto")->capture_default_str();
  app.add_option("--iters", a->iters, "timed runs per variant (after one warm-up)")->capture_default_str();
  app.add_option("--seed", a->seed, "seed for weights and noise")->capture_default_str();
  app.add_flag("--t5-int8", a->t5_int8, "INT8 umT5 linears");
  app.add_flag("--no-cuda-graph", a->no_cuda_graph, "run the DiT forward eagerly (as turbodiff t2v --no-cuda-graph)");
  app.add_option("--t5-config", a->t5_config, "umT5 config JSON (default umT5-XXL; tiny ones for smoke runs)");
  app.add_option("-o,--output", a->output,
                 "MP4 path or PNG frame directory (default: a temporary MP4, or frame directory without FFmpeg; "
                 "removed)");
  app.add_flag("--keep-output", a->keep_output, "keep the video");
  cli::add_device_option(app, &a->device);
  return [a]() { return run(*a); };
}

cli::BenchCase reg("pipeline", "Whole t2v pipeline at real shapes with random weights: per-stage table", setup);

}  // namespace
