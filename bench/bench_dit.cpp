// `turbodiff bench dit`: time per Wan DiT forward at a real video shape, with a per-kind breakdown and peak memory.
//
//   turbodiff bench dit --config wan2.1-t2v-1.3b --random-weights --frames 81 --height 480 --width 832 --device cuda
//                       [--attention dense|sla|sagesla] [--topk R] [--linear bf16|w8a8|auto] [--iters N]
//
// Timing: `--warmup` forwards, then the median of `--iters` forwards timed with CUDA events on the engine stream
// (the forward returns a host tensor, so each timed run includes the final device-to-host copy of the output).
// Breakdown: one more forward with a profiler that records event pairs around every op of each kind (attention,
// linear, other) without synchronising, so the profiled run costs about the same as an unprofiled one; the time
// outside all spans (launch gaps, host work) is shown as "unattributed".
// --offload: block weights streamed from pinned host memory (compare peak memory with a run without it).
// --cuda-graph: after the usual numbers, times forward_device() eagerly and through a CUDA graph in the same
// process (device output, so no D2H copy in either) and checks the graph's output against the eager one.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "model/dit/dit.h"

namespace {

using namespace td;

struct Args {
  std::string config = "wan2.1-t2v-1.3b", weights, device = "cuda", attention = "dense", linear = "bf16";
  bool random_weights = false, no_breakdown = false, cuda_graph = false, offload = false, ops = false;
  int frames = 81, height = 480, width = 832, iters = 5, warmup = 1, text_tokens = 512;
  float topk = 0.1f, timestep = 500.f;
  uint64_t seed = 0;
};


const char* offload_note(bool offload) { return offload ? " (offload: graphs are not used, both eager)" : ""; }

class EventProfiler : public DitProfiler {
 public:
  static constexpr int kMaxOps = 32;
  EventProfiler() : spans_(3), ops_(kMaxOps) {}
  void begin(DitOpKind k) override { spans_.begin(int(k)); }
  void end(DitOpKind k) override { spans_.end(int(k)); }
  void begin_op(DitOpKind k, const char* label) override {
    begin(k);
    if (*label) ops_.begin(slot(k, label));
  }
  void end_op(DitOpKind k, const char* label) override {
    if (*label) ops_.end(slot(k, label));
    end(k);
  }
  double ms(DitOpKind k) { return spans_.total_ms(int(k)); }
  // (kind, label) and its total ms per labelled op, in first-seen order.
  struct Op {
    DitOpKind kind;
    std::string label;
  };
  std::vector<std::pair<Op, double>> ops() {
    std::vector<std::pair<Op, double>> v;
    for (size_t i = 0; i < labels_.size(); i++) v.emplace_back(labels_[i], ops_.total_ms(int(i)));
    return v;
  }

 private:
  int slot(DitOpKind k, const char* label) {
    for (size_t i = 0; i < labels_.size(); i++)
      if (labels_[i].kind == k && labels_[i].label == label) return int(i);
    TD_CHECK(int(labels_.size()) < kMaxOps, "bench dit", "more than ", kMaxOps, " op labels");
    labels_.push_back(Op{k, label});
    return int(labels_.size() - 1);
  }
  bench::EventSpans spans_, ops_;
  std::vector<Op> labels_;
};

// Host-clock profiler for CPU runs.
class HostProfiler : public DitProfiler {
 public:
  void begin(DitOpKind k) override { sp_.begin(k); }
  void end(DitOpKind k) override { sp_.end(k); }
  double ms(DitOpKind k) { return sp_.seconds[int(k)] * 1e3; }

 private:
  SyncProfiler sp_;
};

int run(const Args& a) {
  const bool cuda = cli::resolve_device(a.device) == 1;
  DitConfig cfg = DitConfig::resolve(a.config, a.weights, nullptr);
  TD_CHECK(a.random_weights != !a.weights.empty(), "--random-weights",
           "give exactly one of --random-weights and --weights");
  TD_CHECK(a.frames >= 1 && (a.frames - 1) % 4 == 0, "--frames", "must be 4k+1 (the VAE's temporal stride), got ",
           a.frames);
  TD_CHECK(a.height > 0 && a.width > 0 && a.height % 16 == 0 && a.width % 16 == 0, "--height/--width",
           "must be positive multiples of 16, got ", a.height, "x", a.width);
  TD_CHECK(a.iters >= 1 && a.warmup >= 0, "--iters", "need at least one timed iteration");
  TD_CHECK(a.text_tokens >= 1 && a.text_tokens <= cfg.text_len, "--text-tokens", "must be in [1, ", cfg.text_len,
           "]");

  DitOptions opts;
  opts.device = cuda ? Device::CUDA : Device::CPU;
  opts.attention.mode = parse_attention_mode(a.attention);
  TD_CHECK(a.topk > 0.f && a.topk <= 1.f, "--topk", "must be in (0, 1], got ", a.topk);
  opts.attention.topk = a.topk;
  opts.linear = parse_linear_mode(a.linear);
  opts.offload = a.offload;
  TD_CHECK(cuda || (!a.offload && !a.cuda_graph), "--offload/--cuda-graph", "need --device cuda");

  const int64_t F = (a.frames - 1) / 4 + 1, H = a.height / 8, W = a.width / 8;
  const int64_t L = F * (H / 2) * (W / 2);
  std::printf("bench dit: %s | %s\n", cfg.summary().c_str(), bench::device_description().c_str());
  std::printf("  video %d x %d x %d -> latent [%lld, %lld, %lld, %lld], %lld tokens; attention %s (topk %.2f), "
              "linear %s\n",
              a.frames, a.height, a.width, (long long)cfg.noise_dim(), (long long)F, (long long)H, (long long)W,
              (long long)L, attention_mode_name(opts.attention.mode), a.topk, linear_mode_name(opts.linear));

  bench::reset_peak_device_bytes();
  auto dit = a.random_weights ? WanDiT::random(cfg, opts, a.seed) : WanDiT::load(a.weights, cfg, opts);
  std::printf("  weights %s on %s%s\n", bench::fmt_bytes(dit->weight_bytes()).c_str(), device_name(opts.device),
              dit->quantized() ? " (W8A8)" : "");

  Tensor x = bench::random_host({cfg.noise_dim(), F, H, W}, a.seed + 1);
  Tensor ctx = bench::random_host({a.text_tokens, cfg.text_dim}, a.seed + 2);
  Tensor y;
  if (cfg.y_dim() > 0) y = bench::random_host({cfg.y_dim(), F, H, W}, a.seed + 3);
  if (cuda) {
    x = x.to(Device::CUDA);
    ctx = ctx.to(Device::CUDA);
    if (y.defined()) y = y.to(Device::CUDA);
  }
  auto forward = [&] {
    Tensor out = dit->forward(x, a.timestep, ctx, y.defined() ? &y : nullptr);
    (void)out;
  };

  bench::Timing t = bench::time_it(forward, a.warmup, a.iters, cuda);
  const size_t peak = bench::peak_device_bytes();
  std::printf("  forward: median %.1f ms (min %.1f, max %.1f) over %d iters after %d warm-up\n", t.median_ms,
              t.min_ms, t.max_ms, a.iters, a.warmup);
  if (cuda) std::printf("  peak GPU memory (allocator: live + cached, since load): %s\n", bench::fmt_bytes(peak).c_str());

  // FLOPs of one forward (dense attention; sparse modes report dense-equivalent).
  const double D = double(cfg.dim), Fd = double(cfg.ffn_dim), Lt = double(cfg.text_len), nl = double(cfg.num_layers);
  const double lin_flops = nl * (2 * L * D * D * 6 + 2 * Lt * D * D * 2 + 2 * L * D * Fd * 2);
  const double attn_flops = nl * (4.0 * L * L * D + 4.0 * L * Lt * D);

  if (!a.no_breakdown) {
    double ms[3];
    double prof_total = 0;
    if (cuda) {
      EventProfiler prof;
      dit->set_profiler(&prof);
      bench::Timing tp = bench::time_it(forward, 0, 1, true);
      dit->set_profiler(nullptr);
      for (int k = 0; k < 3; k++) ms[k] = prof.ms(DitOpKind(k));
      prof_total = tp.median_ms;
    } else {
      HostProfiler prof;
      dit->set_profiler(&prof);
      bench::Timing tp = bench::time_it(forward, 0, 1, false);
      dit->set_profiler(nullptr);
      for (int k = 0; k < 3; k++) ms[k] = prof.ms(DitOpKind(k));
      prof_total = tp.median_ms;
    }
    std::vector<std::pair<EventProfiler::Op, double>> op_ms;
    if (cuda && a.ops) {
      EventProfiler prof;
      dit->set_profiler(&prof);
      bench::time_it(forward, 0, 1, true);
      dit->set_profiler(nullptr);
      op_ms = prof.ops();
    }
    const double sum = ms[0] + ms[1] + ms[2];
    std::printf("  breakdown (one profiled forward, %.1f ms):\n", prof_total);
    std::printf("    %-13s %9.1f ms  %5.1f%%  %7.1f TFLOP/s%s\n", "attention", ms[0], 100 * ms[0] / prof_total,
                ms[0] > 0 ? attn_flops / (ms[0] * 1e9) : 0.0,
                opts.attention.mode == AttentionMode::Dense ? "" : " (dense-equivalent)");
    std::printf("    %-13s %9.1f ms  %5.1f%%  %7.1f TFLOP/s\n", "linear", ms[1], 100 * ms[1] / prof_total,
                ms[1] > 0 ? lin_flops / (ms[1] * 1e9) : 0.0);
    std::printf("    %-13s %9.1f ms  %5.1f%%\n", "norm/other", ms[2], 100 * ms[2] / prof_total);
    std::printf("    %-13s %9.1f ms  %5.1f%%\n", "unattributed", prof_total - sum,
                100 * (prof_total - sum) / prof_total);
    if (!op_ms.empty()) {
      std::printf("  per op (a second profiled forward, CUDA events):\n");
      for (const auto& e : op_ms)
        std::printf("    %-10s %-38s %8.2f ms\n", dit_op_kind_name(e.first.kind), e.first.label.c_str(), e.second);
    }
  }
  std::printf("RESULT bench=dit config=%s device=%s attention=%s linear=%s offload=%d tokens=%lld forward_ms=%.2f "
              "peak_bytes=%zu\n",
              cfg.name.c_str(), device_name(opts.device), attention_mode_name(opts.attention.mode),
              linear_mode_name(opts.linear), int(a.offload), (long long)L, t.median_ms, peak);

  if (a.cuda_graph && cuda) {
    Tensor out;
    auto fwd_dev = [&] { out = dit->forward_device(x, a.timestep, ctx, y.defined() ? &y : nullptr); };
    dit->set_cuda_graph(false);
    bench::Timing te = bench::time_it(fwd_dev, 1, a.iters, true);
    Tensor ref = out.to(Device::CPU);
    dit->set_cuda_graph(true);
    bench::Timing tg = bench::time_it(fwd_dev, 2, a.iters, true);  // warm-up at this grid, then capture
    Tensor got = out.to(Device::CPU);
    double maxd = 0;
    for (int64_t i = 0; i < ref.numel(); i++)
      maxd = std::max(maxd, double(std::fabs(ref.ptr<float>()[i] - got.ptr<float>()[i])));
    std::printf("  cuda graph (device output): eager median %.2f ms, graph median %.2f ms (%.2fx), captured %s, "
                "max |graph - eager| %.3g%s\n",
                te.median_ms, tg.median_ms, te.median_ms / tg.median_ms, dit->graph_captured() ? "yes" : "NO", maxd,
                offload_note(a.offload));
    std::printf("RESULT bench=dit_graph config=%s attention=%s linear=%s tokens=%lld eager_ms=%.2f graph_ms=%.2f "
                "max_diff=%.3g\n",
                cfg.name.c_str(), attention_mode_name(opts.attention.mode), linear_mode_name(opts.linear),
                (long long)L, te.median_ms, tg.median_ms, maxd);
    dit->set_cuda_graph(false);
  }
  return 0;
}

cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--config", a->config, "preset or config.json (default wan2.1-t2v-1.3b)");
  app.add_flag("--random-weights", a->random_weights, "random weights (no checkpoint needed)");
  app.add_option("--weights", a->weights, "a DiT checkpoint instead of random weights");
  app.add_option("--frames", a->frames, "video frames (4k+1, default 81)");
  app.add_option("--height", a->height, "video height in pixels (default 480)");
  app.add_option("--width", a->width, "video width in pixels (default 832)");
  cli::add_device_option(app, &a->device);
  app.add_option("--attention", a->attention, "self-attention: dense, sla or sagesla")
      ->check(CLI::IsMember({"dense", "sla", "sagesla"}));
  app.add_option("--topk", a->topk, "fraction of key blocks kept by sla/sagesla (default 0.1)");
  app.add_option("--linear", a->linear, "block linears: bf16, w8a8 or auto (default bf16)")
      ->check(CLI::IsMember({"auto", "bf16", "w8a8"}));
  app.add_option("--iters", a->iters, "timed forwards (default 5)");
  app.add_option("--warmup", a->warmup, "untimed forwards first (default 1)");
  app.add_option("--text-tokens", a->text_tokens, "context rows before padding (default 512)");
  app.add_option("--timestep", a->timestep, "timestep in [0, 1000] (default 500)");
  app.add_option("--seed", a->seed, "seed for weights and inputs");
  app.add_flag("--no-breakdown", a->no_breakdown, "skip the profiled per-kind forward");
  app.add_flag("--ops", a->ops, "also split one profiled forward per op (CUDA)");
  app.add_flag("--cuda-graph", a->cuda_graph, "also time eager vs CUDA-graph forwards (device output)");
  app.add_flag("--offload", a->offload, "stream block weights from pinned host memory");
  return [a] { return run(*a); };
}

cli::BenchCase reg("dit", "Wan DiT forward: time per forward, per-kind breakdown, peak GPU memory", setup);

}  // namespace
