// `turbodiff vae decode|encode`: runs the Wan2.1 VAE on tensors saved as safetensors.
//
//   turbodiff vae decode --weights Wan2.1_VAE.pth --inputs Z.safetensors --output V.safetensors [--device cpu|cuda]
//                        [--tile N] [--fps F]       (--output may also be out.mp4 or a frames/ directory of PNGs)
//   turbodiff vae encode --weights Wan2.1_VAE.pth --inputs V.safetensors --output Z.safetensors [--device ...]
//                        (--inputs may also be a PNG/JPEG image: one frame, resized/cropped to --width x --height)
// z is f32 [16, T, h, w] normalised as the DiT sees it; video f32 [3, 1+4(T-1), 8h, 8w] in [-1, 1]. The input
// file's tensor is the only one it holds, or the one named "z" / "video" (override with --tensor).
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/video.h"
#include "model/vae/wan_vae.h"

namespace {

using namespace td;

struct Args {
  std::string weights, inputs, output, tensor, device = "auto";
  int tile = 0, tile_overlap = -1, fps = 16, width = 0, height = 0;
};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

Tensor pick_input(const std::string& path, const std::string& want, const std::string& dflt) {
  TensorMap m = load_checkpoint(path);
  if (!want.empty()) return m.get(want).to_f32_host().contiguous();
  if (m.size() == 1) return m.all().begin()->second.to_f32_host().contiguous();
  if (const Tensor* t = m.find(dflt)) return t->to_f32_host().contiguous();
  fail(path, cat("holds ", m.size(), " tensors and none is named '", dflt, "'; pick one with --tensor"));
}

void common(CLI::App& app, Args& a) {
  app.add_option("--weights", a.weights, "Wan2.1_VAE.pth (or a safetensors copy)")->required();
  app.add_option("--inputs", a.inputs, "input tensor file (safetensors)")->required();
  app.add_option("--output", a.output, "output file")->required();
  app.add_option("--tensor", a.tensor, "name of the input tensor, when the file holds several");
  cli::add_device_option(app, &a.device);
}

double secs_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_decode(const Args& a) {
  TD_CHECK(a.tile == 0 || a.tile >= 4, "--tile", "must be 0 (off) or at least 4 latent pixels, got ", a.tile);
  TD_CHECK(a.fps > 0 && a.fps <= 240, "--fps", "must be in 1..240, got ", a.fps);
  const bool as_video = !ends_with(a.output, ".safetensors");
  if (as_video) check_video_output(a.output, "--output");
  else check_output_path(a.output, "--output");
  const Device dev = cli::resolve_device(a.device) ? Device::CUDA : Device::CPU;
  Tensor z = pick_input(a.inputs, a.tensor, "z");
  TD_CHECK(z.dim() == 4 && z.size(0) == 16, a.inputs, "expected a latent z [16, T, h, w], got ", shape_str(z.shape()));
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<WanVae> vae = WanVae::load(a.weights, dev);
  log_info("vae: loaded ", a.weights, " in ", secs_since(t0), " s");
  VaeDecodeOptions o;
  o.tile = a.tile;
  o.tile_overlap = a.tile_overlap;
  t0 = std::chrono::steady_clock::now();
  Tensor v = vae->decode(z, o);
  log_info("vae: decoded ", shape_str(z.shape()), " -> ", shape_str(v.shape()), " in ", secs_since(t0), " s",
           dev == Device::CUDA ? cat(", peak device memory ", device_peak_bytes() / 1048576.0, " MiB") : "");
  if (as_video) write_video(a.output, video_to_u8(v), a.fps);
  else save_safetensors(a.output, {{"video", v}});
  std::printf("%s: video %s\n", a.output.c_str(), shape_str(v.shape()).c_str());
  return 0;
}

bool is_image(const std::string& p) {
  for (const char* e : {".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"})
    if (ends_with(p, e)) return true;
  return false;
}

int run_encode(const Args& a) {
  check_output_path(a.output, "--output");
  const Device dev = cli::resolve_device(a.device) ? Device::CUDA : Device::CPU;
  Tensor v;
  if (is_image(a.inputs)) {
    TD_CHECK(a.width > 0 && a.height > 0, "--width/--height", "encoding an image needs the target size");
    v = load_image_for_i2v(a.inputs, a.width, a.height).view({3, 1, a.height, a.width});
  } else {
    v = pick_input(a.inputs, a.tensor, "video");
    TD_CHECK(v.dim() == 4 && v.size(0) == 3, a.inputs, "expected a video [3, T, H, W], got ", shape_str(v.shape()));
  }
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<WanVae> vae = WanVae::load(a.weights, dev);
  t0 = std::chrono::steady_clock::now();
  Tensor z = vae->encode(v);
  log_info("vae: encoded ", shape_str(v.shape()), " -> ", shape_str(z.shape()), " in ", secs_since(t0), " s");
  save_safetensors(a.output, {{"z", z}});
  std::printf("%s: z %s\n", a.output.c_str(), shape_str(z.shape()).c_str());
  return 0;
}

cli::Runner setup(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.require_subcommand(1);
  CLI::App* dec = app.add_subcommand("decode", "latent z [16,T,h,w] -> video [3,1+4(T-1),8h,8w]");
  common(*dec, *a);
  dec->add_option("--tile", a->tile, "spatial tiles of N latent pixels with blended overlaps (0 = off)");
  dec->add_option("--tile-overlap", a->tile_overlap, "tile overlap in latent pixels (default N/4)");
  dec->add_option("--fps", a->fps, "frame rate when --output is a video file (default 16)");
  CLI::App* enc = app.add_subcommand("encode", "video [3,1+4n,H,W] in [-1,1] -> latent z [16,1+n,H/8,W/8]");
  common(*enc, *a);
  enc->add_option("--width", a->width, "target width when --inputs is an image");
  enc->add_option("--height", a->height, "target height when --inputs is an image");
  return [a, dec]() { return dec->parsed() ? run_decode(*a) : run_encode(*a); };
}

cli::Command reg("vae", "Decode latents to video or encode video to latents with the Wan2.1 VAE", setup);

}  // namespace
