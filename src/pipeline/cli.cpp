#include "pipeline/cli.h"

#include <cstdio>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "pipeline/checks.h"
#include "pipeline/i2v.h"
#include "pipeline/t2v.h"
#include "pipeline/wan_stages.h"

namespace td {
namespace pipeline {

static Device cli_device(const std::string& d) {
  if (d == "cpu") return Device::CPU;
  if (d == "cuda") {
    TD_CHECK(cuda_available(), "--device", "cuda: no usable CUDA device (or this build has no CUDA backend)");
    return Device::CUDA;
  }
  return cuda_available() ? Device::CUDA : Device::CPU;
}

void add_generate_options(CLI::App& app, Mode mode, CliState& st) {
  GenerateOptions& o = st.opts;
  o.mode = mode;
  if (mode == Mode::T2V) {
    app.add_option("--dit", o.dit, "DiT checkpoint (TurboWan2.1-T2V-*.pth, -quant for W8A8, or original Wan weights)");
  } else {
    app.add_option("--dit-high", o.dit_high, "high-noise expert (TurboWan2.2-I2V-A14B-high-*.pth)");
    app.add_option("--dit-low", o.dit_low, "low-noise expert (TurboWan2.2-I2V-A14B-low-*.pth)");
    app.add_option("--dit", o.dit, "one checkpoint for both experts (testing)");
    app.add_option("-i,--image", o.image, "first frame (PNG or JPEG)")->required();
    app.add_flag("--adaptive-resolution", o.adaptive_resolution,
                 "keep the --resolution area but follow the image's aspect ratio (sides multiples of 16)");
    app.add_option("--boundary", o.boundary, "switch to the low-noise expert when t < boundary (RF time)")
        ->capture_default_str();
  }
  app.add_option("--t5", o.t5, "umT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)");
  app.add_option("--tokenizer", o.tokenizer, "SentencePiece model (google/umt5-xxl/spiece.model)");
  app.add_option("--vae", o.vae, "Wan2.1 VAE (Wan2.1_VAE.pth)");
  app.add_option("--model-dir", st.model_dir, "directory to find the usual file names in (flags given win)");
  app.add_option("-p,--prompt", o.prompt, "text prompt")->required();
  app.add_option("-o,--output", o.output, "output MP4 (several samples: NAME_0.mp4, NAME_1.mp4, ...)")
      ->capture_default_str();
  st.steps_opt = app.add_option("--steps", o.steps, "sampling steps: 1..4 for rcm (default 4), teacher default 50");
  st.sigma_opt = app.add_option("--sigma-max", o.sigma_max, "rCM initial sigma (t2v 80, i2v 200; larger = less diverse)");
  app.add_flag("--ode", o.ode, "rCM: deterministic Euler steps instead of re-noising (sharper, less robust)");
  app.add_option("--sampler", st.sampler, "rcm (distilled TurboDiffusion models) | unipc | euler (original Wan)")
      ->check(CLI::IsMember({"rcm", "unipc", "euler"}))
      ->capture_default_str();
  app.add_option("--shift", o.shift, "teacher samplers: timestep shift")->capture_default_str();
  app.add_option("--guidance", o.guidance, "teacher samplers: classifier-free guidance scale (1 = off)")
      ->capture_default_str();
  st.neg_opt = app.add_option("--neg-prompt", o.negative_prompt, "teacher samplers: negative prompt (default: Wan's)");
  app.add_option("--attention", st.attention, "self-attention: dense | sla | sagesla")
      ->check(CLI::IsMember({"dense", "sla", "sagesla", "original"}))
      ->capture_default_str();
  app.add_option("--topk", o.topk, "sla/sagesla: fraction of key blocks kept (0.1; 0.15 for quality)")
      ->capture_default_str();
  app.add_option("--linear", st.linear, "block linears: auto (w8a8 for -quant files) | bf16 | w8a8")
      ->check(CLI::IsMember({"auto", "bf16", "w8a8"}))
      ->capture_default_str();
  app.add_option("--frames", o.frames, "frames, 1 + 4k")->capture_default_str();
  st.res_opt = app.add_option("--resolution", o.resolution, "480p | 720p (t2v default 480p, i2v 720p)")
                   ->check(CLI::IsMember({"480p", "720p"}));
  app.add_option("--aspect", o.aspect, "16:9 | 9:16 | 4:3 | 1:1")
      ->check(CLI::IsMember({"16:9", "9:16", "4:3", "1:1"}))
      ->capture_default_str();
  app.add_option("--size", st.size, "explicit WIDTHxHEIGHT (multiples of 16), overrides --resolution/--aspect");
  app.add_option("--seed", o.seed, "random seed (Philox4x32-10; see docs/usage.md)")->capture_default_str();
  app.add_option("--fps", o.fps, "frames per second of the MP4")->capture_default_str();
  app.add_option("--num-samples", o.num_samples, "videos to generate (seeds the same, noise streams differ)")
      ->capture_default_str();
  app.add_flag("--offload", o.offload, "stream DiT blocks from host memory (low-VRAM GPUs)");
  app.add_flag("--no-cuda-graph", st.no_cuda_graph, "do not capture the DiT forward in a CUDA Graph");
  app.add_option("--device", st.device, "cpu, cuda, or auto")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--config", st.dit_config, "DiT config: preset name or config.json (default: inferred)");
  app.add_option("--t5-config", st.t5_config, "umT5 config JSON (default: umT5-XXL)");
  app.add_flag("--t5-int8", st.t5_int8, "store the text encoder's linears as INT8 (less GPU memory)");
  app.add_flag("--json", o.json, "print a machine-readable report on stdout");
  app.add_flag("--no-progress", st.no_progress, "no progress display on stderr");
}

std::vector<std::string> finalize_options(CliState& st, Mode mode) {
  GenerateOptions& o = st.opts;
  o.mode = mode;
  o.sampler = parse_sampler(st.sampler);
  if (!st.steps_opt || st.steps_opt->count() == 0) o.steps = o.sampler == SamplerKind::RCM ? 4 : 50;
  if (mode == Mode::I2V && (!st.sigma_opt || st.sigma_opt->count() == 0)) o.sigma_max = 200;
  if (mode == Mode::I2V && (!st.res_opt || st.res_opt->count() == 0)) o.resolution = "720p";
  o.negative_prompt_set = st.neg_opt && st.neg_opt->count() > 0;
  if (o.negative_prompt_set)
    TD_CHECK(o.sampler != SamplerKind::RCM, "--neg-prompt",
             "the rCM sampler runs without classifier-free guidance (the distilled model has it built in)");
  o.attention = parse_attention_mode(st.attention == "original" ? "dense" : st.attention);
  o.linear = parse_linear_mode(st.linear);
  if (!st.size.empty()) {
    Size s = parse_size(st.size);
    o.width = s.width;
    o.height = s.height;
  }
  o.progress = !st.no_progress;
  o.cuda_graph = !st.no_cuda_graph;
  std::vector<std::string> found;
  if (!st.model_dir.empty()) found = resolve_model_dir(st.model_dir, o);
  return found;
}

int run_generate_command(CliState& st, Mode mode) {
  std::vector<std::string> found = finalize_options(st, mode);
  GenerateOptions& o = st.opts;
  const Device dev = cli_device(st.device);
  if (o.offload && dev != Device::CUDA) log_warn("--offload only applies to --device cuda; ignored");
  // Every cheap check runs before the first model loads.
  std::vector<std::string> notes = preflight(o);
  if (o.json) set_log_level(std::max(log_level(), LogLevel::Warn));

  WanStageOptions w;
  w.device = dev;
  if (!st.t5_config.empty()) w.t5_config = T5Config::from_json_file(st.t5_config);
  w.t5_int8 = st.t5_int8;
  w.dit_config = st.dit_config;
  StageFactory f = make_wan_stages(o, w);
  GenerateReport r = mode == Mode::T2V ? run_t2v(o, f) : run_i2v(o, f);
  r.model_dir_files = found;
  r.notes.insert(r.notes.begin(), notes.begin(), notes.end());
  if (o.offload && dev == Device::CUDA) r.notes.push_back("--offload: DiT blocks streamed from pinned host memory");

  if (o.json) {
    nlohmann::json j = r.to_json(o);
    j["model_dir_files"] = found;
    j["device"] = device_name(dev);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::fprintf(stderr, "%s", format_summary(r).c_str());
    for (auto& p : r.outputs) std::printf("%s\n", p.c_str());
  }
  return 0;
}

}  // namespace pipeline
}  // namespace td
