#include "pipeline/generate.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <thread>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "pipeline/rng.h"
#include "pipeline/samplers.h"

namespace td {
namespace pipeline {

static size_t host_peak_bytes() {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return size_t(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

double GenerateReport::stage_seconds(const std::string& name) const {
  double s = 0;
  for (auto& st : stages)
    if (st.name == name) s += st.seconds;
  return s;
}

nlohmann::json GenerateReport::to_json(const GenerateOptions& o) const {
  using nlohmann::json;
  json j;
  j["mode"] = mode_name(o.mode);
  j["outputs"] = outputs;
  j["seed"] = o.seed;
  json opt;
  opt["prompt"] = o.prompt;
  if (uses_cfg(o)) opt["negative_prompt"] = o.negative_prompt_set ? o.negative_prompt : kWanDefaultNegativePrompt;
  opt["width"] = size.width;
  opt["height"] = size.height;
  opt["frames"] = o.frames;
  opt["fps"] = o.fps;
  opt["sampler"] = sampler_name(o.sampler);
  opt["steps"] = o.steps;
  if (o.sampler == SamplerKind::RCM) {
    opt["sigma_max"] = o.sigma_max;
    opt["ode"] = o.ode;
  } else {
    opt["shift"] = o.shift;
    opt["guidance"] = o.guidance;
  }
  if (o.mode == Mode::I2V) {
    opt["boundary"] = o.boundary;
    opt["image"] = o.image;
    opt["adaptive_resolution"] = o.adaptive_resolution;
  }
  opt["num_samples"] = o.num_samples;
  opt["attention"] = attention_mode_name(o.attention);
  opt["topk"] = o.topk;
  opt["linear"] = linear_mode_name(o.linear);
  opt["offload"] = o.offload;
  json files;
  if (o.mode == Mode::T2V) files["dit"] = o.dit;
  else {
    files["dit_high"] = o.dit_high.empty() ? o.dit : o.dit_high;
    files["dit_low"] = o.dit_low.empty() ? o.dit : o.dit_low;
  }
  files["t5"] = o.t5;
  files["tokenizer"] = o.tokenizer;
  files["vae"] = o.vae;
  opt["files"] = files;
  j["options"] = opt;
  j["latent_shape"] = {latent.channels, latent.frames, latent.height, latent.width};
  j["tokens"] = latent.tokens();
  j["timesteps"] = net_timesteps;
  if (!experts.empty()) j["experts"] = experts;
  json st = json::array();
  for (auto& s : stages) st.push_back({{"stage", s.name}, {"seconds", s.seconds}, {"peak_gpu_bytes", s.peak_gpu_bytes}});
  j["stages"] = st;
  j["total_seconds"] = total_seconds;
  j["peak_gpu_bytes"] = peak_gpu_bytes;
  j["peak_host_bytes"] = peak_host_bytes;
  j["denoiser"] = denoiser;
  j["notes"] = notes;
  return j;
}

void run_stage(GenerateReport& r, const std::string& name, const std::function<void()>& fn) {
  const bool gpu = cuda_available();
  if (gpu) device_reset_peak();
  auto t0 = std::chrono::steady_clock::now();
  try {
    fn();
  } catch (const Error& e) {
    if (e.subject() == "GPU memory")
      fail("GPU memory", cat(e.what(), " during the ", name,
                             " stage; try a smaller --resolution or --size, fewer --frames, -quant weights with "
                             "--linear w8a8, --t5-int8, or --offload (streams DiT blocks from host memory)"));
    throw;
  }
  if (gpu) device_synchronize();
  StageTiming s;
  s.name = name;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.peak_gpu_bytes = gpu ? device_peak_bytes() : 0;
  r.peak_gpu_bytes = std::max(r.peak_gpu_bytes, s.peak_gpu_bytes);
  r.peak_host_bytes = std::max(r.peak_host_bytes, host_peak_bytes());
  r.stages.push_back(s);
}

void sampler_schedule(const GenerateOptions& o, std::vector<double>* times, std::vector<double>* net_t) {
  net_t->clear();
  if (o.sampler == SamplerKind::RCM) {
    *times = rcm_times(o.steps, o.sigma_max);
    // The reference casts t x 1000 to bf16 before the network (988, 932, 852, 608 for sigma_max 80).
    for (size_t i = 0; i + 1 < times->size(); i++)
      net_t->push_back(double(bf16_to_f32(f32_to_bf16(float((*times)[i] * 1000.0)))));
  } else {
    FlowSchedule fs = flow_schedule(o.steps, o.shift);
    *times = fs.sigmas;
    *net_t = fs.timesteps;
  }
}

// The initial-noise threads run while the text encoder and the DiT load use the thread pool (checkpoint conversion,
// tokenization): as SCHED_IDLE threads they only get cores the rest of the process leaves idle, so they cannot stretch
// a pool region. Once the diffusion stage waits for them, every core is idle.
static void lower_thread_priority() {
  sched_param sp{};
  sp.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);  // best effort: a failure only costs overlap
}

// rCM starts from noise * t0 (the x0 term dropped); the flow samplers from pure noise (sigma_0 ~ 1). Element j of
// sample b is a pure function of (seed, draw, j), so the split over threads does not change a number.
static InitialLatents make_initial_latents(const GenerateOptions& o, const LatentShape& shape, bool background) {
  std::vector<double> times, net_t;
  sampler_schedule(o, &times, &net_t);
  const size_t n = size_t(shape.numel());
  const double scale0 = o.sampler == SamplerKind::RCM ? times[0] : 1.0;
  InitialLatents xs(static_cast<size_t>(o.num_samples), std::vector<double>(n));
  const size_t nthreads = std::max<size_t>(1, std::min<size_t>(8, n / 65536));
  for (int b = 0; b < o.num_samples; b++) {
    double* x = xs[size_t(b)].data();
    auto part = [&](size_t lo, size_t hi) {
      if (background) lower_thread_priority();  // never the caller's thread in the synchronous form
      std::vector<float> e(hi - lo);
      normal_fill(o.seed, noise_draw(b, 0), lo, e.data(), e.size(), false);
      for (size_t i = lo; i < hi; i++) x[i] = double(e[i - lo]) * scale0;
    };
    std::vector<std::thread> th;
    for (size_t t = 1; t < nthreads; t++) th.emplace_back(part, n * t / nthreads, n * (t + 1) / nthreads);
    part(0, n / nthreads);
    for (auto& t : th) t.join();
  }
  return xs;
}

InitialLatents initial_latents(const GenerateOptions& o, const LatentShape& shape) {
  return make_initial_latents(o, shape, false);
}

std::future<InitialLatents> initial_latents_async(const GenerateOptions& o, const LatentShape& shape) {
  return std::async(std::launch::async, [o, shape] { return make_initial_latents(o, shape, true); });
}

std::vector<Tensor> denoise(const GenerateOptions& o, const LatentShape& shape,
                            const std::function<Denoiser&(double t, int step)>& denoiser_for, const Tensor& context,
                            const Tensor* neg_context, const Tensor* y, Progress& progress,
                            std::future<InitialLatents>* initial) {
  std::vector<double> times, net_t;
  sampler_schedule(o, &times, &net_t);
  const int steps = int(net_t.size()), B = o.num_samples;
  const Shape lshape{shape.channels, shape.frames, shape.height, shape.width};
  const size_t n = size_t(shape.numel());
  const bool cfg = uses_cfg(o);
  TD_ASSERT(!cfg || neg_context != nullptr);

  const double t_begin = monotonic_seconds();
  InitialLatents xs = initial && initial->valid() ? initial->get() : initial_latents(o, shape);
  TD_ASSERT(xs.size() == size_t(B) && xs[0].size() == n);
  std::vector<UniPC> unipc;
  if (o.sampler == SamplerKind::UniPC)
    for (int b = 0; b < B; b++) unipc.emplace_back(times, n);

  Tensor x = Tensor::empty(lshape, DType::F32);
  log_debug("denoise: initial noise ", 1e3 * (monotonic_seconds() - t_begin), " ms");
  progress.stage("diffusion", steps * B, "step");
  for (int i = 0; i < steps; i++) {
    const double t_step = monotonic_seconds();
    Denoiser& net = denoiser_for(times[size_t(i)], i);
    for (int b = 0; b < B; b++) {
      std::vector<double>& xb = xs[size_t(b)];
      float* xp = x.ptr<float>();
      parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
        for (int64_t k = lo; k < hi; k++) xp[k] = float(xb[k]);
      }, int64_t(1) << 16);
      // The rCM step's fresh noise is drawn on another thread while the network runs (counter-based Philox: the
      // values do not depend on when or where they are drawn). Serially there: on the thread pool it held up the
      // pool work of this thread (the DiT's input staging went from ~2 to ~9 ms per 480p step).
      const double tc = times[size_t(i)], tn = times[size_t(i) + 1];
      std::future<Tensor> noise_next;
      if (o.sampler == SamplerKind::RCM && !o.ode && tn > 0)
        noise_next = std::async(std::launch::async,
                                [&, b, i] { return randn(lshape, o.seed, noise_draw(b, 1 + i), false); });
      if (b == 0 && i + 1 < steps) net.prefetch_timestep(float(net_t[size_t(i) + 1]));
      const double t_call = monotonic_seconds();
      Tensor v = net.velocity(x, float(net_t[size_t(i)]), context, y).to_f32_host().contiguous();
      const double t_net = monotonic_seconds();
      TD_CHECK(v.numel() == int64_t(n), "denoiser", "returned ", shape_str(v.shape()), " for a latent of ",
               shape_str(lshape));
      if (cfg) {
        Tensor vu = net.velocity(x, float(net_t[size_t(i)]), *neg_context, y).to_f32_host().contiguous();
        cfg_combine(v.ptr<float>(), vu.ptr<float>(), n, o.guidance);
      }
      const float* vp = v.ptr<float>();
      switch (o.sampler) {
        case SamplerKind::RCM: {
          Tensor noise;
          if (noise_next.valid()) noise = noise_next.get();
          rcm_step(xb.data(), vp, noise.defined() ? noise.ptr<float>() : nullptr, n, tc, tn, o.ode);
          break;
        }
        case SamplerKind::Euler: euler_step(xb.data(), vp, n, tc, tn); break;
        case SamplerKind::UniPC: unipc[size_t(b)].step(i, xb.data(), vp); break;
      }
      log_debug("step ", i + 1, ": network call ", 1e3 * (t_net - t_call), " ms, sampler update ",
                1e3 * (monotonic_seconds() - t_net), " ms");
      progress.update(i * B + b + 1);
    }
    log_debug("step ", i + 1, ": total ", 1e3 * (monotonic_seconds() - t_step), " ms");
  }
  progress.finish();
  const double t_out = monotonic_seconds();

  std::vector<Tensor> out;
  for (int b = 0; b < B; b++) {
    Tensor t = Tensor::empty(lshape, DType::F32);
    float* p = t.ptr<float>();
    const double* xb = xs[size_t(b)].data();
    parallel_for(int64_t(n), [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; k++) p[k] = float(xb[k]);
    }, int64_t(1) << 16);
    TD_CHECK(std::isfinite(p[0]) && std::isfinite(p[n - 1]), "denoiser", "produced non-finite latents");
    out.push_back(t);
  }
  log_debug("denoise: outputs ", 1e3 * (monotonic_seconds() - t_out), " ms");
  return out;
}

std::string sample_output_path(const std::string& path, int b, int num_samples) {
  if (num_samples <= 1) return path;
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return cat(path, "_", b);
  return cat(path.substr(0, dot), "_", b, path.substr(dot));
}

std::string format_summary(const GenerateReport& r) {
  std::string s;
  char line[160];
  for (auto& st : r.stages) {
    std::snprintf(line, sizeof line, "  %-14s %8.2f s", st.name.c_str(), st.seconds);
    s += line;
    if (st.peak_gpu_bytes) {
      std::snprintf(line, sizeof line, "   peak GPU %7.2f GiB", double(st.peak_gpu_bytes) / (1 << 30));
      s += line;
    }
    s += "\n";
  }
  std::snprintf(line, sizeof line, "  %-14s %8.2f s\n", "total", r.total_seconds);
  s += line;
  std::snprintf(line, sizeof line, "peak GPU memory %.2f GiB, peak host memory %.2f GiB\n",
                double(r.peak_gpu_bytes) / (1 << 30), double(r.peak_host_bytes) / (1 << 30));
  s += line;
  return s;
}

}  // namespace pipeline
}  // namespace td
