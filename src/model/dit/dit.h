// The Wan2.1/2.2 DiT (WanModel) forward, t2v and i2v (Wan2.2 style, no CLIP branch), on any device through ops::*.
// Semantics: ../shared/reference/wan_spec.md §1.2-1.3, exactly as the official wan/modules/model.py.
//
//   auto dit = WanDiT::load("model.safetensors", DitConfig::resolve("", path, nullptr), {Device::CUDA});
//   Tensor v = dit->forward(x, t, context, nullptr);   // x [16,F,H,W] f32, context [L,4096] f32
//
// Dtypes: CPU runs f32 throughout. CUDA keeps weights bf16 (norm weights, biases and modulation f32), activations
// bf16 and the residual stream f32; the time embedding/projection run on the host in f32 (one row; as the official
// code runs them in fp32) and the head/unpatchify output is f32.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/dit/dit_config.h"
#include "ops/ops.h"

namespace td {

class TensorMap;

// How block linears run. Auto: W8A8 when the checkpoint is a TurboDiffusion -quant file, else float.
// Float ("bf16" on the CLI: bf16 on CUDA, f32 on CPU): a -quant checkpoint is dequantized at load.
// W8A8: a float checkpoint is quantized at load (128x128 tiles, TurboDiffusion's scheme).
enum class LinearMode : uint8_t { Auto, Float, W8A8 };
LinearMode parse_linear_mode(const std::string& s);  // "auto" | "bf16" | "w8a8"; td::Error naming --linear
const char* linear_mode_name(LinearMode m);

struct DitOptions {
  Device device = Device::CPU;
  AttentionOptions attention;  // self-attention (mode, topk, block sizes); cross-attention is always dense
  LinearMode linear = LinearMode::Auto;
  // CUDA only. Capture the per-call work (patch embedding, text MLP, blocks, head) into a CUDA graph and replay it:
  // the first call at a grid runs eagerly (warm-up: allocator blocks, cuBLASLt plans), the second captures, later
  // ones replay. Per-call inputs (patches, padded context, t-derived modulation) are copied into fixed device buffers
  // before each replay. A new grid re-captures. Ignored (eager) while a profiler is set or with `offload`.
  bool cuda_graph = false;
  // CUDA only. Keep block weights in pinned host memory and stream them through two device slots, block i+1's copy
  // overlapping block i's compute (a second stream, ordered by events). Device weights: non-block layers + 2 blocks.
  bool offload = false;
};

// Per-kind timing hooks for benchmarks. begin/end bracket each op call of that kind; the implementation decides
// how to time (a CUDA implementation must synchronise or use events). Not called when no profiler is set.
enum class DitOpKind : uint8_t { Attention, Linear, Other };
const char* dit_op_kind_name(DitOpKind k);
class DitProfiler {
 public:
  virtual ~DitProfiler() = default;
  virtual void begin(DitOpKind kind) = 0;
  virtual void end(DitOpKind kind) = 0;
  // The same brackets with the op's label ("self q/k/v", "ffn.2 quant+GEMM+residual", ...) for a finer split.
  virtual void begin_op(DitOpKind kind, const char* label) {
    (void)label;
    begin(kind);
  }
  virtual void end_op(DitOpKind kind, const char* label) {
    (void)label;
    end(kind);
  }
};

// A simple profiler: wall time per kind, synchronising the device at each boundary (so totals are exact but the
// forward runs slower than unprofiled; measure the total separately).
class SyncProfiler : public DitProfiler {
 public:
  void begin(DitOpKind kind) override;
  void end(DitOpKind kind) override;
  double seconds[3] = {0, 0, 0};  // indexed by DitOpKind
  void reset() { seconds[0] = seconds[1] = seconds[2] = 0; }

 private:
  double t0_ = 0;
};

struct DitWeights;
struct DitWorkspace;

class WanDiT {
 public:
  // `weights`: .safetensors, a sharded .safetensors.index.json, or a .pth (keys normalised with key_names.h).
  static std::unique_ptr<WanDiT> load(const std::string& weights, const DitConfig& config, const DitOptions& opts);
  // From tensors already in memory (host; any float dtype; keys normalised or not).
  static std::unique_ptr<WanDiT> from_tensors(const TensorMap& tensors, const DitConfig& config,
                                              const DitOptions& opts);
  // Random weights (deterministic for a seed), for benchmarks and tests. Generated tensor by tensor, so host memory
  // stays at one tensor beyond what the device holds.
  static std::unique_ptr<WanDiT> random(const DitConfig& config, const DitOptions& opts, uint64_t seed);
  ~WanDiT();

  // x: f32 [noise_dim, F, H, W] (host or device; H, W even); t: timestep in [0, 1000]; context: f32 [L <= text_len,
  // text_dim] (zero-padded inside); y: f32 [y_dim, F, H, W] for i2v, else null. Returns host f32 [out_dim, F, H, W].
  Tensor forward(const Tensor& x, float t, const Tensor& context, const Tensor* y = nullptr);
  // The same, returning f32 [out_dim, F, H, W] on the model's device. On CUDA with f32 CUDA x (and y) the inputs
  // are patchified on the device and nothing crosses PCIe but the time-modulation vectors and the padded context.
  Tensor forward_device(const Tensor& x, float t, const Tensor& context, const Tensor* y = nullptr);

  const DitConfig& config() const { return config_; }
  const DitOptions& options() const { return opts_; }
  bool quantized() const;  // block linears run W8A8
  size_t weight_bytes() const;  // on the model's device (with offload: non-block weights + the two block slots)
  bool graph_captured() const;  // a CUDA graph is held for the last grid (tests, benchmarks)
  void set_profiler(DitProfiler* p) { profiler_ = p; }
  // Turns DitOptions::cuda_graph on or off after load (off drops a captured graph).
  void set_cuda_graph(bool on);
  // Computes the host-side time modulation for a coming forward at timestep t (f32 GEMVs over ~68 MB of weights at
  // 1.3B), so that forward() only uploads it. Safe to call from another thread while a forward runs; a sampler
  // calls it for step i + 1 during step i. Keeps the last few timesteps.
  void precompute_timestep(float t);
  // Context reuse: when on (CUDA, no --offload, no CUDA graph), a forward given the same context tensor as the
  // previous one (same storage, shape and dtype) reuses the text MLP output and every block's cross-attention k/v
  // instead of recomputing them (~1.8 ms per 1.3B forward, for 94 MB of per-block k/v). The caller promises not to
  // modify a context tensor in place between calls; WanDenoiser passes its own device copy.
  void set_context_reuse(bool on) { context_reuse_ = on; }

 private:
  struct TimeModulation {
    float t = 0.f;
    Tensor mod, head_mod;  // host f32 [layers, 6, D], [2, D]
  };
  TimeModulation time_modulation(float t) const;
  // The precomputed modulation for t (a copy sharing its tensors), or one with undefined tensors.
  TimeModulation cached_time_modulation(float t);
  WanDiT(const DitConfig& c, const DitOptions& o);
  DitConfig config_;
  DitOptions opts_;
  std::unique_ptr<DitWeights> w_;
  std::unique_ptr<DitWorkspace> ws_;
  DitProfiler* profiler_ = nullptr;
  bool context_reuse_ = false;
  std::mutex time_mu_;
  std::vector<TimeModulation> time_cache_;  // newest last, at most kTimeCache
  friend struct DitBinder;
  friend class DitRunner;
};

}  // namespace td
