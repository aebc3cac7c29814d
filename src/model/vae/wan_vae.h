// The Wan2.1 video VAE (z_dim 16; also the VAE of Wan2.2 A14B), loaded from Wan2.1_VAE.pth (or a safetensors copy
// with the same key names).
//
// Causal in time: every kernel-3 conv sees its input with 2 frames of history (zeros before the start), which the
// model carries between chunks in a per-conv 2-frame cache, so decoding runs one latent frame at a time with memory
// independent of the frame count. The first latent frame bypasses both temporal up-samplings (T latent frames ->
// 1 + 4(T-1) video frames); encoding runs the first frame alone, then chunks of 4 frames, each giving one latent
// frame. Activations are channels-last [T, H, W, C] on the device: f32 on the CPU, bf16 (fp32 accumulation) on CUDA.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_map.h"

namespace td {

struct VaeConfig {
  int dim = 96;  // base channel count (tests use tiny ones)
  int z_dim = 16;
  std::vector<int> dim_mult = {1, 2, 4, 4};
  int num_res_blocks = 2;
  std::vector<bool> temporal_downsample = {false, true, true};  // encoder; the decoder uses it reversed
  // Reads dim and z_dim from a checkpoint's shapes (decoder.head.0.gamma / encoder.conv1.weight, conv2.weight).
  static VaeConfig from_weights(const TensorMap& w);
};

struct VaeDecodeOptions {
  int chunk = 1;         // latent frames per decoder call after the first (which is always 1); 0 = all at once
  // Frames per pass through the stages after the last temporal up-sampling (0 = all). 1: the least memory, and as
  // fast as 2 or 4 on the H100 since those stages run frame by frame anyway (docs/perf.md, session 5).
  int tail_frames = 1;
  int tile = 0;          // spatial tile size in latent pixels (0 = untiled)
  int tile_overlap = -1; // overlap in latent pixels (-1 = tile / 4)
  // Progress: called after each decoder call with (latent frames done, total); tiled runs report per tile pass.
  std::function<void(int, int)> on_frame;
  // Streaming: called (in order, on the calling thread) once frames [f0, f1) of the returned [3, F, H, W] tensor
  // `video` hold their final values, while later frames still decode; tiled decodes call it once at the end.
  std::function<void(const Tensor& video, int64_t f0, int64_t f1)> on_frames;
};

class WanVae {
 public:
  // Loads and converts the weights for `dev` (checks every shape, naming the tensor). Either half may be absent
  // from the file; the corresponding call then fails with a clear error.
  WanVae(const TensorMap& weights, Device dev, const VaeConfig& cfg);
  WanVae(const TensorMap& weights, Device dev) : WanVae(weights, dev, VaeConfig::from_weights(weights)) {}
  static std::unique_ptr<WanVae> load(const std::string& path, Device dev);
  // Random weights with the checkpoint's key names (benchmarks, tests at the real channel counts).
  static TensorMap random_weights(const VaeConfig& cfg, uint64_t seed);
  ~WanVae();

  const VaeConfig& config() const { return cfg_; }
  Device device() const { return dev_; }
  bool has_decoder() const;
  bool has_encoder() const;

  // z: host f32 [z_dim, T, h, w], normalised as the DiT sees it. Returns host f32 [3, 1+4(T-1), 8h, 8w] in [-1, 1].
  Tensor decode(const Tensor& z, const VaeDecodeOptions& opts = {}) const;
  // video: host f32 [3, 1+4n, H, W] in [-1, 1], H and W multiples of 8. Returns host f32 [z_dim, 1+n, H/8, W/8].
  Tensor encode(const Tensor& video) const;

  struct Impl;

 private:
  VaeConfig cfg_;
  Device dev_;
  std::unique_ptr<Impl> impl_;
};

// Latent normalisation constants of Wan2.1's VAE (per channel): z = (mu - mean) / std.
extern const float kWanVaeMean[16];
extern const float kWanVaeStd[16];

}  // namespace td
