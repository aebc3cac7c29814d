#include "pipeline/i2v.h"

#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "pipeline/t2v.h"

namespace td {
namespace pipeline {

Size i2v_size(const GenerateOptions& o, Size image) {
  if (o.width > 0 || o.height > 0) return {o.width, o.height};
  Size table = resolution_size(o.resolution, o.aspect);
  return o.adaptive_resolution ? adaptive_size(table, image.width, image.height) : table;
}

Tensor i2v_condition(const Tensor& image_latent) {
  Tensor z = image_latent.to_f32_host().contiguous();
  TD_CHECK(z.dim() == 4 && z.size(0) == 16, "vae", "encoded image latent has shape ", shape_str(z.shape()),
           ", expected [16, F, h, w]");
  const int64_t F = z.size(1), plane = z.size(2) * z.size(3);
  Tensor y = Tensor::zeros({20, F, z.size(2), z.size(3)}, DType::F32);
  float* p = y.ptr<float>();
  for (int c = 0; c < 4; c++)
    for (int64_t i = 0; i < plane; i++) p[c * F * plane + i] = 1.f;  // latent frame 0 of each mask channel
  std::memcpy(p + 4 * F * plane, z.ptr<float>(), size_t(z.numel()) * sizeof(float));
  return y;
}

GenerateReport run_i2v(const GenerateOptions& o, StageFactory& f) {
  TD_ASSERT(o.mode == Mode::I2V);
  auto t0 = std::chrono::steady_clock::now();
  GenerateReport r;
  Size img = f.image_size(o.image);
  r.size = i2v_size(o, img);
  validate_options(o, r.size);
  r.latent = latent_shape(r.size, o.frames);
  sampler_schedule(o, &r.times, &r.net_timesteps);
  std::future<InitialLatents> initial = initial_latents_async(o, r.latent);  // while the encoders and DiT load
  Progress progress(o.progress && !o.json);

  // The image is decoded before any model runs, so a corrupt file fails in milliseconds.
  Tensor image = f.load_image(o.image, r.size).to_f32_host().contiguous();
  TD_CHECK(image.dim() == 3 && image.size(0) == 3 && image.size(1) == r.size.height && image.size(2) == r.size.width,
           "--image", "loader returned ", shape_str(image.shape()), ", expected [3, ", r.size.height, ", ",
           r.size.width, "]");

  progress.stage("text encode", 0, "");
  Tensor neg;
  Tensor ctx = encode_prompts(o, f, r, &neg);

  Tensor y;
  run_stage(r, "vae encode", [&] {
    Tensor video = Tensor::zeros({3, o.frames, r.size.height, r.size.width}, DType::F32);
    const int64_t plane = int64_t(r.size.height) * r.size.width;
    for (int c = 0; c < 3; c++)
      std::memcpy(video.ptr<float>() + c * o.frames * plane, image.ptr<float>() + c * plane,
                  size_t(plane) * sizeof(float));
    std::unique_ptr<Vae> vae = f.vae();
    Tensor z = vae->encode(video);
    TD_CHECK(z.dim() == 4 && z.size(1) == r.latent.frames && z.size(2) == r.latent.height &&
                 z.size(3) == r.latent.width,
             "vae", "encode returned ", shape_str(z.shape()), " for a ", o.frames, "-frame ", r.size.width, "x",
             r.size.height, " video");
    y = i2v_condition(z);
  });
  if (f.release_memory) f.release_memory();

  const std::string high = o.dit_high.empty() ? o.dit : o.dit_high, low = o.dit_low.empty() ? o.dit : o.dit_low;
  std::unique_ptr<Denoiser> net;
  std::string role;
  double load_seconds = 0;
  auto denoiser_for = [&](double t, int) -> Denoiser& {
    std::string want = t >= o.boundary ? "high" : "low";
    if (want != role) {
      auto l0 = std::chrono::steady_clock::now();
      net.reset();  // the previous expert leaves the GPU before the next one arrives
      if (f.release_memory) f.release_memory();
      net = f.denoiser(want, want == "high" ? high : low);
      net->prepare(r.latent, true);
      role = want;
      if (r.denoiser.empty()) r.denoiser = net->describe();
      load_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - l0).count();
    }
    r.experts.push_back(want);
    return *net;
  };
  run_stage(r, "diffusion", [&] {
    r.latents = denoise(o, r.latent, denoiser_for, ctx, neg.defined() ? &neg : nullptr, &y, progress, &initial);
  });
  net.reset();
  if (f.release_memory) f.release_memory();
  // Expert loading happens inside the loop; report it apart from the denoising time.
  for (auto& s : r.stages)
    if (s.name == "diffusion") s.seconds -= load_seconds;
  r.stages.push_back({"dit load", load_seconds, 0});

  decode_and_write(o, f, r, r.latents, progress);
  r.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace pipeline
}  // namespace td
