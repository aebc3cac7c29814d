// Shared parts of the t2v and i2v runs: the denoising loop over all samples, stage timing and memory accounting,
// the JSON report, and the conversion of decoded video to u8 frames.
#pragma once

#include <functional>
#include <future>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "pipeline/options.h"
#include "pipeline/progress.h"
#include "pipeline/stages.h"

namespace td {
namespace pipeline {

struct StageTiming {
  std::string name;
  double seconds = 0;
  size_t peak_gpu_bytes = 0;  // high-water mark during the stage (0 without CUDA)
};

struct GenerateReport {
  Size size;
  LatentShape latent;
  std::vector<double> times;          // sampler times (RF t / sigma) of each step, plus the final 0
  std::vector<double> net_timesteps;  // what the network received (t x 1000, bf16-rounded for rCM)
  std::vector<std::string> experts;   // i2v: expert used at each step ("high"/"low")
  std::vector<StageTiming> stages;
  std::vector<std::string> outputs;
  std::vector<std::string> notes;     // warnings and facts worth showing (e.g. "no CUDA Graph: ...")
  std::vector<std::string> model_dir_files;
  std::string denoiser;
  size_t peak_gpu_bytes = 0;
  size_t peak_host_bytes = 0;
  double total_seconds = 0;
  std::vector<Tensor> latents;        // final latents, one per sample (kept for tests)

  nlohmann::json to_json(const GenerateOptions& o) const;
  double stage_seconds(const std::string& name) const;
};

// Runs `fn` as a named stage: times it, records the stage's GPU peak, and turns an out-of-GPU-memory td::Error into
// one that names the ways out (--offload, a smaller --resolution/--size, fewer --frames).
void run_stage(GenerateReport& r, const std::string& name, const std::function<void()>& fn);

// The sampler times and network timesteps for the options (rCM schedule or Wan's flow schedule).
void sampler_schedule(const GenerateOptions& o, std::vector<double>* times, std::vector<double>* net_t);

// The sampler's starting state of every sample (noise * t0 for rCM, pure noise for the flow samplers), in double.
using InitialLatents = std::vector<std::vector<double>>;
InitialLatents initial_latents(const GenerateOptions& o, const LatentShape& shape);
// initial_latents on its own threads (not the pool, which the stages before the diffusion use), started when the run
// starts: the noise depends only on the seed and the shape, so it is ready by the time the text encoder and the DiT
// load are done (at 480p it took ~10 ms on the pool at the start of the diffusion stage).
std::future<InitialLatents> initial_latents_async(const GenerateOptions& o, const LatentShape& shape);

// Denoises all samples. `denoiser_for(t)` returns the network for sampler time t (t2v: always the same; i2v: swaps
// experts at the boundary, so steps run outer and samples inner: one swap per run, not per sample). `neg_context`
// is used for CFG with the teacher samplers when guidance != 1. `initial`: the starting state from
// initial_latents_async (null: computed here). Latents are returned f32 on the host.
std::vector<Tensor> denoise(const GenerateOptions& o, const LatentShape& shape,
                            const std::function<Denoiser&(double t, int step)>& denoiser_for, const Tensor& context,
                            const Tensor* neg_context, const Tensor* y, Progress& progress,
                            std::future<InitialLatents>* initial = nullptr);

// Output path of sample b: the path itself for one sample, else "<stem>_<b><ext>".
std::string sample_output_path(const std::string& path, int b, int num_samples);

// Whether the negative-prompt pass runs (teacher sampler with guidance != 1).
inline bool uses_cfg(const GenerateOptions& o) { return o.sampler != SamplerKind::RCM && o.guidance != 1.0; }

// The human summary printed on stderr at the end (stage table, peak memory) when --json is off.
std::string format_summary(const GenerateReport& r);

}  // namespace pipeline
}  // namespace td
