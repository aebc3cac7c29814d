// The umT5-XXL text encoder (Wan's T5Encoder from wan/modules/t5.py, encoder_only, shared_pos=False), CPU and CUDA.
//
//   x = token_embedding[ids]                                   (no scaling)
//   per layer: x += o(Attn(norm1(x)));  x += fc2(fc1(norm2 x) * gelu_tanh(gate(norm2 x)))
//   Attn: softmax(q k^T + pos_bias + mask) v per head, no 1/sqrt(d) scaling; pos_bias from the layer's own
//         [num_buckets, heads] table indexed by the bidirectional relative-position bucket
//   out = norm(x); every norm is T5's RMSNorm (eps 1e-6, no mean, no bias).
//
// Padding: keys whose mask is 0 get no attention weight (the reference fills them with finfo.min), and the
// position bias only depends on j - i, so the real tokens' outputs do not depend on how much padding follows.
// encode() therefore runs on the real tokens only; encode_padded() exists to test that equivalence.
//
// Backends: CPU keeps the checkpoint's (mmapped) weights and widens one matrix at a time to fp32 (fp32 math);
// CUDA uploads bf16 weights (q|k|v and gate|fc1 concatenated so each is one GEMM) and keeps the embedding table on
// the host (only L rows are needed per prompt: 2.1 GB of GPU memory saved). --t5-int8 stores the linear weights as
// INT8 with one scale per 128 inputs of each output row and widens them to bf16 into two alternating buffers on a
// side stream, one GEMM ahead, so the memory-bound widening overlaps the compute-bound GEMMs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "cpu/t5_ops.h"
#include "io/tensor_map.h"

namespace td {

// The official T5Encoder constructor arguments (umt5_xxl values by default).
struct T5Config {
  int64_t vocab = 256384;
  int64_t dim = 4096;
  int64_t dim_attn = 4096;
  int64_t dim_ffn = 10240;
  int num_heads = 64;
  int num_layers = 24;
  int num_buckets = 32;
  bool shared_pos = false;  // umT5: one relative-position table per layer
  int max_dist = 128;       // T5RelativeEmbedding's default
  float eps = 1e-6f;

  int64_t head_dim() const { return dim_attn / num_heads; }
  // Keys: vocab (or vocab_size), dim, dim_attn, dim_ffn, num_heads, num_layers (or encoder_layers), num_buckets,
  // shared_pos; "dropout"/"decoder_layers" are accepted and ignored. Unknown keys are an error naming the file.
  static T5Config from_json_file(const std::string& path);
  void validate(const std::string& what) const;
  std::string describe() const;
};

// Wan key name for a tensor of a T5 encoder checkpoint in Wan or HF (UMT5EncoderModel / ComfyUI) naming; strips
// "module."/"model."/"text_encoder." wrappers. Unknown names come back unchanged (after stripping).
std::string normalize_t5_key(const std::string& key);

// Counter-based uniform in [-bound, bound): shared by the host and the device weight generator.
float t5_hash_uniform(uint64_t seed, uint64_t index, float bound);

struct T5Options {
  Device device = Device::CPU;
  bool int8 = false;
  int64_t int8_group = 128;  // inputs per scale (falls back to a whole row when it does not divide K)
};

class T5Encoder {
 public:
  // Loads any checkpoint td::load_checkpoint reads (.pth, .safetensors, index). Shapes are checked against cfg;
  // td::Error names the file and tensor.
  static std::unique_ptr<T5Encoder> load(const std::string& path, const T5Config& cfg, const T5Options& opt);
  // From an already loaded map (tests).
  static std::unique_ptr<T5Encoder> from_tensors(const TensorMap& m, const T5Config& cfg, const T5Options& opt);
  // Random weights with the official init scales (benchmarks): generated on the device for CUDA, and the embedding
  // rows are computed from the seed when gathered, so nothing of vocab x dim size is ever allocated.
  static std::unique_ptr<T5Encoder> random(const T5Config& cfg, const T5Options& opt, uint64_t seed);
  ~T5Encoder();

  const T5Config& config() const { return cfg_; }
  const T5Options& options() const { return opt_; }
  int64_t embedding_rows() const { return cfg_.vocab; }
  size_t device_weight_bytes() const;

  // Hidden states for the real tokens: f32 host [L, dim]. ids must be < vocab.
  Tensor encode(const std::vector<int32_t>& ids);
  // Reference semantics with padding: ids and mask of the same length P; f32 host [P, dim] (padded rows are
  // computed like the reference does, and carry no meaning).
  Tensor encode_padded(const std::vector<int32_t>& ids, const std::vector<int32_t>& mask);

  struct Layer {
    Tensor norm1, norm2, pos;                    // [dim], [dim], [num_buckets, heads]
    cpu::T5Matrix q, k, v, o, gate, fc1, fc2;    // CPU
    cpu::T5Matrix qkv, gatefc1, o_d, fc2_d;      // CUDA (concatenated where the input is shared)
  };

 private:
  T5Encoder(const T5Config& cfg, const T5Options& opt) : cfg_(cfg), opt_(opt) {}
  Tensor embed(const std::vector<int32_t>& ids) const;  // f32 host [L, dim]
  Tensor forward_cpu(const std::vector<int32_t>& ids, const int32_t* mask);
  Tensor forward_cuda(const std::vector<int32_t>& ids, const int32_t* mask);
  void upload_cuda();  // moves the loaded host weights into the CUDA layout (cuda_dispatch_t5.cpp)

  T5Config cfg_;
  T5Options opt_;
  Tensor embedding_;       // host [vocab, dim] (borrowed from the mapped file when possible)
  uint64_t random_seed_ = 0;
  bool random_embedding_ = false;
  Tensor final_norm_;
  std::vector<Layer> layers_;
  std::shared_ptr<void> source_;  // keeps the mapped checkpoint alive while weights borrow from it
  friend struct T5CudaImpl;
};

}  // namespace td
