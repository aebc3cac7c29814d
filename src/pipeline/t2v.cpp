#include "pipeline/t2v.h"

#include <chrono>

#include "core/error.h"
#include "core/log.h"
#include "io/video.h"

namespace td {
namespace pipeline {

Size requested_size(const GenerateOptions& o) {
  if (o.width > 0 || o.height > 0) return {o.width, o.height};
  return resolution_size(o.resolution, o.aspect);
}

static void release(StageFactory& f) {
  if (f.release_memory) f.release_memory();
}

Tensor encode_prompts(const GenerateOptions& o, StageFactory& f, GenerateReport& r, Tensor* neg_context) {
  Tensor ctx;
  std::unique_ptr<TextEncoder> enc;
  run_stage(r, "text load", [&] { enc = f.text_encoder(); });
  run_stage(r, "text encode", [&] {
    ctx = enc->encode(o.prompt);
    if (uses_cfg(o)) *neg_context = enc->encode(o.negative_prompt_set ? o.negative_prompt : kWanDefaultNegativePrompt);
  });
  enc.reset();  // the encoder (11 GB for umT5-XXL) is gone before the DiT loads
  release(f);
  return ctx;
}

void decode_and_write(const GenerateOptions& o, StageFactory& f, GenerateReport& r, const std::vector<Tensor>& latents,
                      Progress& progress) {
  std::unique_ptr<Vae> vae;
  run_stage(r, "vae load", [&] { vae = f.vae(); });
  for (size_t b = 0; b < latents.size(); b++) {
    std::string path = sample_output_path(o.output, int(b), o.num_samples);
    auto on_frame = [&](int done, int) { progress.update(done); };
    if (f.open_video) {
      // Frames go to the writer as the VAE finishes them: the encoder / PNG writers run while later frames decode.
      std::unique_ptr<VideoWriter> writer = f.open_video(path, o.fps);
      run_stage(r, "vae decode", [&] {
        progress.stage("vae decode", int(latents[b].size(1)), "latent frame");
        vae->decode_streaming(latents[b], on_frame, [&](const Tensor& video, int64_t f0, int64_t f1) {
          writer->add(video_to_u8(video.slice(1, f0, f1)));
        });
        progress.finish();
      });
      run_stage(r, "video write", [&] { writer->finish(); });
    } else {
      Tensor frames;
      run_stage(r, "vae decode", [&] {
        progress.stage("vae decode", int(latents[b].size(1)), "latent frame");
        Tensor video = vae->decode(latents[b], on_frame);
        progress.finish();
        frames = video_to_u8(video);
      });
      run_stage(r, "video write", [&] { f.write_video(path, frames, o.fps); });
    }
    r.outputs.push_back(path);
  }
  vae.reset();
  release(f);
}

GenerateReport run_t2v(const GenerateOptions& o, StageFactory& f) {
  TD_ASSERT(o.mode == Mode::T2V);
  auto t0 = std::chrono::steady_clock::now();
  GenerateReport r;
  r.size = requested_size(o);
  validate_options(o, r.size);
  r.latent = latent_shape(r.size, o.frames);
  sampler_schedule(o, &r.times, &r.net_timesteps);
  std::future<InitialLatents> initial = initial_latents_async(o, r.latent);  // while the text encoder and DiT load
  Progress progress(o.progress && !o.json);

  progress.stage("text encode", 0, "");
  Tensor neg;
  Tensor ctx = encode_prompts(o, f, r, &neg);

  std::unique_ptr<Denoiser> net;
  run_stage(r, "dit load", [&] {
    net = f.denoiser("dit", o.dit);
    net->prepare(r.latent, false);
  });
  r.denoiser = net->describe();
  run_stage(r, "diffusion", [&] {
    r.latents = denoise(o, r.latent, [&](double, int) -> Denoiser& { return *net; }, ctx, neg.defined() ? &neg : nullptr,
                        nullptr, progress, &initial);
  });
  net.reset();
  release(f);

  decode_and_write(o, f, r, r.latents, progress);
  r.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace pipeline
}  // namespace td
