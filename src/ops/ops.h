// The op interface the models are written against. Each op dispatches on the device of its output tensor to
// td::cpu::<op> (src/cpu/<op>.cpp, fp32 reference) or td::cuda::<op> (src/cuda/<op>.cu), which share names and
// semantics. Tests compare the two on random inputs.
//
// Dtype contract:
//  - CPU: all activations and weights f32 (weights are converted once at load).
//  - CUDA: weights bf16; activations bf16 except where noted (the residual stream and modulation vectors are f32,
//    as in the official Wan code where LayerNorms/modulation run in fp32). Ops accept the dtypes listed per op and
//    reject others with td::Error naming the tensor.
// Layouts are row-major contiguous unless stated. Shapes in comments: [rows, cols].
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace td {

enum class Epilogue : uint8_t { None, GeluTanh };

enum class AttentionMode : uint8_t { Dense, SLA, SageSLA };
const char* attention_mode_name(AttentionMode m);
AttentionMode parse_attention_mode(const std::string& s);  // "dense" | "sla" | "sagesla"; td::Error names --attention

// Options for self-attention. Dense ignores everything but `scale`.
struct AttentionOptions {
  AttentionMode mode = AttentionMode::Dense;
  float scale = 0.f;   // 0 -> 1/sqrt(head_dim)
  float topk = 0.1f;   // fraction of key blocks kept per query block (sla/sagesla)
  int block_q = 0;     // 0 -> per-mode/arch default
  int block_k = 0;
  const Tensor* proj_l_weight = nullptr;  // [D, D] linear-branch projection (sla/sagesla)
  const Tensor* proj_l_bias = nullptr;    // [D]
};

namespace ops {

// y[M,N] = x[M,K] · w[N,K]^T (+ bias[N]) then the epilogue. CPU: f32. CUDA: x,w bf16, bias bf16/f32, y bf16 or f32.
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue ep = Epilogue::None);

// y[M,D] = LayerNorm(x)(no affine, eps) * (1 + scale[D]) + shift[D]. x: f32 (CUDA also bf16); scale/shift f32.
// y: CPU f32; CUDA bf16 (feeds a GEMM).
void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y);

// y[M,D] = LayerNorm(x) * weight[D] + bias[D] (affine; weight/bias may be null for no affine). Same dtypes as above.
void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y);

// The residual add before a LayerNorm, fused with it: x[M,D] += y * gate[D] (gate null: plus y), then
// h = LayerNorm(x) * (1 + mul) + add when `modulate` (mul = scale, add = shift; both required), else
// LayerNorm(x) * mul + add (affine; either may be null). x f32; y, h, gate as gated_residual / layernorm. y may be
// the same tensor as h (the DiT reuses one buffer for the linear output and the next norm's output).
void residual_layernorm(Tensor& x, const Tensor& y, const Tensor* gate, const Tensor* mul, const Tensor* add,
                        bool modulate, float eps, Tensor& h);

// In place: x[M,D] = x * rsqrt(mean(x^2) + eps) * weight[D], statistics in fp32 (RMSNorm over the whole D).
void rmsnorm(Tensor& x, const Tensor& weight, float eps);

// In place 3-D RoPE on x[L, H, Dh] (L = F*Hp*Wp tokens, row-major f,h,w). Interleaved pairs (x[2i], x[2i+1]);
// pairs [0, c_f) rotate by frame index, [c_f, c_f+c_hw) by row, the rest by column, with c_hw = Dh/2/3 ... exactly
// as Wan: for Dh=128, 22/21/21 pairs, theta 10000, angle = pos * theta^(-2i/n_axis_dims). fp32/fp64 math.
void rope3d(Tensor& x, int frames, int height, int width, float theta = 10000.f);

// o[Lq, H, Dh] = softmax(q k^T * scale) v per head; q[Lq,H,Dh], k,v[Lk,H,Dh]. No mask.
// CPU f32; CUDA bf16 in/out with fp32 softmax. Self-attention honours opts.mode (sla/sagesla come with SageSLA).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts = {});

// The attention output handed straight to a W8A8 linear (ops/w8a8.h Int8Act: int8 [Lq, H * 128], one 128-channel
// group per token and head, quantized from fp32 as quantize_act_int8), sparing a quantization pass over o. Only
// where attention_int8_supported says so (CUDA, head_dim 128; SageSLA needs its pipelined sm_90 kernel); td::Error
// elsewhere.
struct Int8Act;
bool attention_int8_supported(const Tensor& q, const AttentionOptions& opts);
void attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Int8Act& out, const AttentionOptions& opts);

// x[M,D] += y[M,D] * gate[D]. x f32 (the residual stream); y f32 (CPU) or bf16 (CUDA); gate f32.
void gated_residual(Tensor& x, const Tensor& y, const Tensor& gate);

// x[M,D] += y[M,D] (no gate; the cross-attention residual). Dtypes as gated_residual.
void add_residual(Tensor& x, const Tensor& y);

// Elementwise in place on any shape: SiLU / tanh-GELU. f32 or bf16.
void silu(Tensor& x);
void gelu_tanh(Tensor& x);

// Converts between dtypes on the same device (f32 <-> bf16 <-> f16). Shapes must match.
void cast(const Tensor& src, Tensor& dst);

}  // namespace ops
}  // namespace td
