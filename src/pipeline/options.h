// Everything a t2v / i2v run is configured by, the resolution tables, and the up-front validation that rejects bad
// input before any model is loaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "pipeline/samplers.h"

namespace td {
namespace pipeline {

enum class Mode { T2V, I2V };
enum class LinearMode { Auto, BF16, W8A8 };  // Auto: w8a8 for -quant checkpoints (int8 weights), else bf16

struct GenerateOptions {
  Mode mode = Mode::T2V;
  // Files.
  std::string dit, dit_high, dit_low;  // t2v uses dit; i2v uses dit_high/dit_low (or dit for both)
  std::string t5, tokenizer, vae, image;
  std::string output = "output/generated_video.mp4";
  // Prompt.
  std::string prompt, negative_prompt;
  bool negative_prompt_set = false;
  // Video geometry.
  std::string resolution = "480p";  // 480p | 720p (i2v default 720p, set by the CLI)
  std::string aspect = "16:9";      // 16:9 | 9:16 | 4:3 | 1:1
  int width = 0, height = 0;        // explicit --size WxH overrides resolution/aspect
  bool adaptive_resolution = false;  // i2v: keep the area, follow the image's aspect ratio
  int frames = 81;
  int fps = 16;
  // Sampling.
  SamplerKind sampler = SamplerKind::RCM;
  int steps = 4;           // rCM default; teacher default 50 (the CLI sets it when --steps is absent)
  double sigma_max = 80;   // rCM; 200 for i2v
  bool ode = false;        // rCM: Euler instead of re-noising
  double shift = 5.0;      // teacher samplers
  double guidance = 5.0;   // teacher samplers (CFG); 1 = no negative pass
  double boundary = 0.9;   // i2v: high-noise expert while t >= boundary
  uint64_t seed = 0;
  int num_samples = 1;
  // Network.
  AttentionMode attention = AttentionMode::SageSLA;
  float topk = 0.1f;
  LinearMode linear = LinearMode::Auto;
  bool offload = false;     // stream DiT blocks from host memory
  bool cuda_graph = true;   // capture the DiT forward where the model allows
  int device = -1;          // 0 cpu, 1 cuda, -1 auto
  // Output / UX.
  bool json = false;
  bool progress = true;     // still off when stderr is not a terminal
};

struct Size {
  int width = 0, height = 0;
};

// turbodiffusion.md §2.1: 480p 16:9 = 832x480, 9:16 = 480x832, 4:3 = 640x480, 1:1 = 640x640; 720p: 1280x720,
// 720x1280, 960x720, 960x960. td::Error naming --resolution / --aspect.
Size resolution_size(const std::string& resolution, const std::string& aspect);
// i2v --adaptive-resolution: the area of the table size, the image's aspect ratio, sides rounded to multiples of 16.
Size adaptive_size(Size table, int image_width, int image_height);
// Parses "832x480" (width x height); td::Error naming --size.
Size parse_size(const std::string& s);

// Latent geometry: [16, 1 + (frames-1)/4, height/8, width/8].
struct LatentShape {
  int channels = 16, frames = 0, height = 0, width = 0;
  int64_t numel() const { return int64_t(channels) * frames * height * width; }
  int64_t tokens() const { return int64_t(frames) * (height / 2) * (width / 2); }
};
LatentShape latent_shape(Size s, int frames);

// Cheap checks on the options alone (no file is opened): size multiple of 16, frames = 1 + 4k, steps range for the
// sampler, positive sigma_max/shift, boundary in (0, 1), num_samples >= 1, fps in 1..240, non-empty prompt.
// Each td::Error names the flag.
void validate_options(const GenerateOptions& o, Size size);

// Checks that the input files exist and are readable and that the output directory is writable. td::Error names the
// flag and the path.
void check_files(const GenerateOptions& o);

// --model-dir: fills unset file options from the usual file names found in `dir` (TurboDiffusion / Wan layouts):
// TurboWan2.1-T2V-*.pth (prefers -quant when --linear w8a8), TurboWan2.2-I2V-A14B-{high,low}-*.pth,
// models_t5_umt5-xxl-enc-bf16.pth, google/umt5-xxl/spiece.model (or spiece.model), Wan2.1_VAE.pth. Returns a list of
// "flag = path" lines for the report; td::Error naming --model-dir if the directory does not exist.
std::vector<std::string> resolve_model_dir(const std::string& dir, GenerateOptions& o);

const char* mode_name(Mode m);
const char* linear_mode_name(LinearMode m);
LinearMode parse_linear_mode(const std::string& s);  // "auto" | "bf16" | "w8a8"; td::Error names --linear

}  // namespace pipeline
}  // namespace td
