// `turbodiff bench vae`: Wan2.1 VAE decode and encode at a real video shape, with peak device memory.
//
//   turbodiff bench vae --random-weights [--frames 81 --height 480 --width 832] [--device cuda] [--iters 3]
//                       [--tile N] [--tail-frames N] [--chunk N] [--no-encode] [--weights Wan2.1_VAE.pth]
// TD_VAE_CONV=2d (environment) switches the convs from cuDNN 3-D to per-time-tap 2-D convs for comparison;
// TD_VAE_PROFILE=1 prints where the time goes (per op kind and conv shape).
//
// Decode: 21 latent frames of 60x104 -> 81 x 480 x 832 (the official code: 1.86 s, 4.4 GiB on an H100). Timing is
// wall clock around the whole call (host latent in, host f32 video out: the same work a pipeline pays), median of
// --iters after --warmup calls (the first call also picks cuDNN algorithms). Peak memory is the device allocator's
// high-water mark over the timed calls (live tensors + its cache).
#include <cstdio>
#include <random>

#include "bench_util.h"
#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "model/vae/vae_ops.h"
#include "model/vae/wan_vae.h"

namespace {

using namespace td;

struct Args {
  std::string weights, device = "cuda";
  bool random_weights = false, no_encode = false;
  int frames = 81, height = 480, width = 832, iters = 3, warmup = 1, tile = 0, tail_frames = 2, chunk = 1;
  uint64_t seed = 0;
};


int run(const Args& a) {
  TD_CHECK(a.random_weights != !a.weights.empty(), "--weights", "pass either --random-weights or --weights PATH");
  TD_CHECK(a.frames >= 1 && (a.frames - 1) % 4 == 0, "--frames", "must be 1 + 4k, got ", a.frames);
  TD_CHECK(a.height % 8 == 0 && a.width % 8 == 0 && a.height > 0 && a.width > 0, "--height/--width",
           "must be positive multiples of 8, got ", a.width, "x", a.height);
  TD_CHECK(a.iters >= 1 && a.warmup >= 0, "--iters", "need at least one timed iteration");
  const bool cuda = cli::resolve_device(a.device) == 1;
  const Device dev = cuda ? Device::CUDA : Device::CPU;
  VaeConfig cfg;
  std::unique_ptr<WanVae> vae;
  if (a.random_weights) vae.reset(new WanVae(WanVae::random_weights(cfg, a.seed), dev, cfg));
  else vae = WanVae::load(a.weights, dev);
  const int64_t T = 1 + (a.frames - 1) / 4, h = a.height / 8, w = a.width / 8;
  std::printf("vae bench on %s: latent [16, %lld, %lld, %lld] <-> video [3, %d, %d, %d]%s\n",
              bench::device_description().c_str(), (long long)T, (long long)h, (long long)w, a.frames, a.height,
              a.width, a.tile ? cat(", tile ", a.tile).c_str() : "");
  Tensor z = bench::random_host({16, T, h, w}, a.seed + 1, 1.f);
  VaeDecodeOptions o;
  o.tile = a.tile;
  o.tail_frames = a.tail_frames;
  o.chunk = a.chunk;
  Tensor video;
  auto report = [&](const char* what, const bench::Timing& t) {
    std::printf("  %-7s median %8.1f ms  (min %.1f, max %.1f, %zu runs)", what, t.median_ms, t.min_ms, t.max_ms,
                t.ms.size());
    if (cuda) std::printf("  peak device memory %s", bench::fmt_bytes(bench::peak_device_bytes()).c_str());
    std::printf("\n");
  };
  auto settle = [&] {
    if (!cuda) return;
    device_synchronize();
    device_empty_cache();  // drop the algorithm search's scratch so the peak reflects steady-state use
    bench::reset_peak_device_bytes();
    vae::profile_reset();
  };
  auto profile = [&](const char* what) {
    const std::string r = vae::profile_report();
    if (!r.empty()) std::printf("  %s, summed over %d calls (TD_VAE_PROFILE syncs around every op):\n%s", what,
                                a.iters, r.c_str());
  };
  for (int i = 0; i < a.warmup; i++) video = vae->decode(z, o);
  settle();
  bench::Timing td = bench::time_it([&] { video = vae->decode(z, o); }, 0, a.iters, false);
  report("decode", td);
  profile("decode");
  if (!a.no_encode) {
    for (int i = 0; i < a.warmup; i++) vae->encode(video);
    settle();
    bench::Timing te = bench::time_it([&] { vae->encode(video); }, 0, a.iters, false);
    report("encode", te);
    profile("encode");
  }
  return 0;
}

cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_flag("--random-weights", a->random_weights, "random weights at the real channel counts");
  app.add_option("--weights", a->weights, "Wan2.1_VAE.pth instead of random weights");
  app.add_option("--frames", a->frames, "video frames (4k+1, default 81 = 21 latent frames)");
  app.add_option("--height", a->height, "video height (default 480)");
  app.add_option("--width", a->width, "video width (default 832)");
  app.add_option("--iters", a->iters, "timed calls (default 3)");
  app.add_option("--warmup", a->warmup, "untimed calls first (default 1)");
  app.add_option("--tile", a->tile, "spatial tile size in latent pixels (0 = off)");
  app.add_option("--tail-frames", a->tail_frames,
                 "frames per pass after the last temporal up-sampling (default 2; 0 = all; lower = less memory)");
  app.add_option("--chunk", a->chunk, "latent frames per decoder call after the first (default 1; 0 = all)");
  app.add_flag("--no-encode", a->no_encode, "time decode only");
  app.add_option("--seed", a->seed, "seed for weights and inputs");
  cli::add_device_option(app, &a->device);
  return [a] { return run(*a); };
}

cli::BenchCase reg("vae", "Wan2.1 VAE decode/encode at 81x480x832: wall time and peak GPU memory", setup);

}  // namespace
