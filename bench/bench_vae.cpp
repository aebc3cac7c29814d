// `turbodiff bench vae`: Wan2.1 VAE decode and encode at a real video shape, with peak device memory.
//
//   turbodiff bench vae --random-weights [--frames 81 --height 480 --width 832] [--device cuda] [--iters 3]
//                       [--tile N] [--tail-frames N] [--chunk N] [--no-encode] [--weights Wan2.1_VAE.pth]
// TD_VAE_CONV=2d (environment) switches the convs from cuDNN 3-D to per-time-tap 2-D convs for comparison;
// TD_VAE_PROFILE=1 prints where the time goes (per op kind and conv shape). --convs times the decoder's big conv
// shapes alone instead (one frame each): cuDNN against our wgmma kernel, plain and with the fused norm epilogue.
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
#ifdef TD_WITH_CUDA
#include "cuda/conv2d_wgmma.h"
#include "cuda/conv3d.h"
#endif
#include "model/vae/wan_vae.h"

namespace {

using namespace td;

struct Args {
  std::string weights, device = "cuda";
  bool random_weights = false, no_encode = false, convs = false, tiles = false;
  int frames = 81, height = 480, width = 832, iters = 3, warmup = 1, tile = 0, tail_frames = 1, chunk = 1;
  uint64_t seed = 0;
};


#ifdef TD_WITH_CUDA
// One frame of each big decoder conv: cuDNN (the generic conv3d path) vs conv2d_wgmma vs conv2d_wgmma_norm.
// The wgmma conv's tile variants (conv2d_wgmma_config.h), timed one by one with --tiles.
const char* const kConvTiles[] = {"n96r8", "n96r4", "n192r4"};

int run_convs(const Args& a) {
  TD_CHECK(cuda::conv2d_wgmma_available(), "--convs", "needs an sm_90 GPU and an sm_90a build");
  struct Shape2 { int64_t H, W, C, O, k; const char* what; };
  const Shape2 shapes[] = {{480, 832, 288, 96, 3, "ring 288->96 @480x832"},
                           {240, 416, 576, 192, 3, "ring 576->192 @240x416"},
                           {240, 416, 192, 384, 2, "sub-pixel 2x2 192->384 @240x416"},
                           {120, 208, 384, 768, 2, "sub-pixel 2x2 384->768 @120x208"}};
  std::printf("vae convs on %s, one frame each, median of %d after %d warm-up\n", bench::device_description().c_str(),
              a.iters, a.warmup);
  Conv3dParams pad1;
  pad1.pad_top = pad1.pad_bottom = pad1.pad_left = pad1.pad_right = 1;
  for (const Shape2& s : shapes) {
    Tensor x = bench::random_device({1, s.H, s.W, s.C}, DType::BF16, 1);
    Tensor w = bench::random_device({s.O, 1, s.k, s.k, s.C}, DType::BF16, 2, 0.02f);
    Tensor b = bench::random_device({s.O}, DType::F32, 3), g = bench::random_device({s.O}, DType::F32, 4);
    const int64_t Ho = s.H + 3 - s.k, Wo = s.W + 3 - s.k;
    Tensor y = Tensor::empty({1, Ho, Wo, s.O}, DType::BF16, Device::CUDA);
    const double flops = 2.0 * Ho * Wo * s.O * s.k * s.k * s.C;
    auto line = [&](const char* impl, const bench::Timing& t) {
      std::printf("  %-34s %-14s %8.3f ms %7.1f TFLOP/s\n", s.what, impl, t.median_ms, flops / (t.median_ms * 1e9));
    };
    // cuDNN through cuda::conv3d (a depth-1 conv) for the 3x3 shapes; the 2x2 ones would take the wgmma kernel there.
    if (s.k == 3) {
      line("cuDNN", bench::time_it([&] { cuda::conv3d(x, w, &b, y, pad1, false); }, a.warmup, a.iters, true));
    }
    line("wgmma", bench::time_it([&] { cuda::conv2d_wgmma(x, w, &b, y, false); }, a.warmup, a.iters, true));
    if (s.k == 3) line("+ accumulate", bench::time_it([&] { cuda::conv2d_wgmma(x, w, &b, y, true); }, a.warmup, a.iters,
                                                      true));
    if (s.k == 2) {
      Tensor ys = Tensor::empty({1, 2 * s.H, 2 * s.W, s.O / 4}, DType::BF16, Device::CUDA);
      line("+ phase shuffle", bench::time_it([&] { cuda::conv2d_wgmma_subpixel(x, w, &b, ys); }, a.warmup, a.iters,
                                             true));
    }
    if (a.tiles)
      for (const char* tile : kConvTiles) {
        if (std::string(tile) == "n192r4" && s.O % 192 != 0) continue;
        line(tile, bench::time_it([&] { cuda::conv2d_wgmma(x, w, &b, y, false, tile); }, a.warmup, a.iters, true));
      }
    if (s.k == 3 && (s.O == 96 || s.O == 192)) {
      Tensor ring = Tensor::empty({1, Ho, Wo, 3 * s.O}, DType::BF16, Device::CUDA);
      line("wgmma + norm",
           bench::time_it([&] { cuda::conv2d_wgmma_norm(x, w, &b, cuda::ConvNormOut{&g, &ring, int(s.O)}); },
                          a.warmup, a.iters, true));
      line("+ residual + norm", bench::time_it([&] {
             cuda::conv2d_wgmma_norm(x, w, &b, cuda::ConvNormOut{&g, &ring, int(s.O), &y, &b});
           }, a.warmup, a.iters, true));
    }
  }
  // The causal 3x3x3 convs at 384 channels: cuDNN's 3-D conv over [2 history + n] frames vs the wgmma kernel reading
  // them in place.
  struct Causal { int64_t n, H, W; const char* what; };
  const Causal causal[] = {{2, 120, 208, "causal 384->384 @120x208 x2"}, {1, 60, 104, "causal 384->384 @60x104 x1"}};
  for (const Causal& c : causal) {
    const int64_t C = 384;
    Tensor buf = bench::random_device({c.n + 2, c.H, c.W, C}, DType::BF16, 5);
    Tensor w = bench::random_device({C, 3, 3, 3, C}, DType::BF16, 6, 0.02f);
    Tensor b = bench::random_device({C}, DType::F32, 7);
    Tensor y = Tensor::empty({c.n, c.H, c.W, C}, DType::BF16, Device::CUDA);
    const double flops = 2.0 * c.n * c.H * c.W * C * 27 * C;
    auto line = [&](const char* impl, const bench::Timing& t) {
      std::printf("  %-34s %-14s %8.3f ms %7.1f TFLOP/s\n", c.what, impl, t.median_ms, flops / (t.median_ms * 1e9));
    };
    line("cuDNN 3-D", bench::time_it([&] { cuda::conv3d(buf, w, &b, y, pad1, false); }, a.warmup, a.iters, true));
    Tensor hist = buf.slice(0, 0, 2), x = buf.slice(0, 2, c.n + 2);
    line("wgmma",
         bench::time_it([&] { cuda::conv3d_causal_wgmma(hist, x, w, &b, y, false); }, a.warmup, a.iters, true));
    line("+ accumulate",
         bench::time_it([&] { cuda::conv3d_causal_wgmma(hist, x, w, &b, y, true); }, a.warmup, a.iters, true));
    if (a.tiles)
      for (const char* tile : kConvTiles)
        line(tile, bench::time_it([&] { cuda::conv3d_causal_wgmma(hist, x, w, &b, y, false, tile); }, a.warmup,
                                  a.iters, true));
  }
  return 0;
}
#endif

int run(const Args& a) {
#ifdef TD_WITH_CUDA
  if (a.convs) return run_convs(a);
#endif
  TD_CHECK(!a.convs, "--convs", "needs a CUDA build");
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
                 "frames per pass after the last temporal up-sampling (default 1; 0 = all; lower = less memory)");
  app.add_option("--chunk", a->chunk, "latent frames per decoder call after the first (default 1; 0 = all)");
  app.add_flag("--no-encode", a->no_encode, "time decode only");
  app.add_flag("--convs", a->convs, "time the big decoder convs alone (cuDNN vs our wgmma kernel) instead");
  app.add_flag("--tiles", a->tiles, "with --convs: also time every tile variant of the wgmma kernel");
  app.add_option("--seed", a->seed, "seed for weights and inputs");
  cli::add_device_option(app, &a->device);
  return [a] { return run(*a); };
}

cli::BenchCase reg("vae", "Wan2.1 VAE decode/encode at 81x480x832: wall time and peak GPU memory", setup);

}  // namespace
