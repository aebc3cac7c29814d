// The pipeline talks to the models through these small interfaces, one per memory phase. A StageFactory creates
// each stage when its phase starts; the pipeline destroys it when the phase ends, so at most one large model is
// resident at a time (text encoder -> DiT / one i2v expert -> VAE). wan_stages.cpp builds the real factory from the
// engine's models; tests build factories of tiny fakes to check the orchestration itself.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "io/video.h"
#include "pipeline/options.h"

namespace td {
namespace pipeline {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // Prompt -> context [L, 4096] (L <= 512 real tokens incl. </s>; the DiT zero-pads to 512). Any device/dtype the
  // Denoiser of the same factory accepts.
  virtual Tensor encode(const std::string& prompt) = 0;
};

class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // Flow velocity for latent x [16, F, H, W] (f32, host) at network time t (RF t x 1000), text context from the
  // TextEncoder, and for i2v the conditioning y [20, F, H, W] (mask 4 + image latent 16; null for t2v).
  // Returns [16, F, H, W] f32 on the host.
  virtual Tensor velocity(const Tensor& x, float t, const Tensor& context, const Tensor* y) = 0;
  // Called once before the first velocity() with the fixed shapes of the run, so an implementation can allocate
  // its buffers and capture a CUDA Graph. Default: nothing.
  virtual void prepare(const LatentShape& shape, bool has_y) {}
  // A hint that a coming velocity() call will be at network time t: an implementation may prepare for it in the
  // background (the sampler calls it for step i + 1 right before step i). Default: nothing.
  virtual void prefetch_timestep(float t) {}
  // A one-line description for the report ("Wan2.1 1.3B, w8a8, sagesla, cuda graph").
  virtual std::string describe() const { return ""; }
};

class Vae {
 public:
  virtual ~Vae() = default;
  // Latent [16, F, h, w] (f32 host) -> video [3, 1 + 4(F-1), 8h, 8w] in [-1, 1], f32 host. `on_frame(done, total)`
  // reports latent frames decoded.
  virtual Tensor decode(const Tensor& z, const std::function<void(int, int)>& on_frame) = 0;
  // decode() that also calls on_frames(video, f0, f1), in order, as soon as frames [f0, f1) of the result are final
  // (the pipeline writes them while later frames decode). Default: decode, then one call for all frames.
  virtual Tensor decode_streaming(const Tensor& z, const std::function<void(int, int)>& on_frame,
                                  const std::function<void(const Tensor&, int64_t, int64_t)>& on_frames) {
    Tensor v = decode(z, on_frame);
    on_frames(v, 0, v.size(1));
    return v;
  }
  // Video [3, T, H, W] in [-1, 1] (f32 host) -> normalised latent [16, 1 + (T-1)/4, H/8, W/8] (the mean, as Wan).
  virtual Tensor encode(const Tensor& video) = 0;
};

struct StageFactory {
  std::function<std::unique_ptr<TextEncoder>()> text_encoder;
  // role: "dit", "high" or "low"; path: the checkpoint for that role.
  std::function<std::unique_ptr<Denoiser>(const std::string& role, const std::string& path)> denoiser;
  std::function<std::unique_ptr<Vae>()> vae;
  // Frames [T, H, W, 3] u8 -> a video file at `fps`.
  std::function<void(const std::string& path, const Tensor& frames, int fps)> write_video;
  // Optional: a writer taking frames while the VAE decodes (see VideoWriter). When set it is used instead of
  // write_video, and "video write" only times what is left after the decode.
  std::function<std::unique_ptr<VideoWriter>(const std::string& path, int fps)> open_video;
  // Image file -> its size; and -> [3, H, W] f32 in [-1, 1] resized to `size` (bicubic, as Wan).
  std::function<Size(const std::string& path)> image_size;
  std::function<Tensor(const std::string& path, Size size)> load_image;
  // Frees cached device memory between phases (device_empty_cache on CUDA). May be empty.
  std::function<void()> release_memory;
};

}  // namespace pipeline
}  // namespace td
