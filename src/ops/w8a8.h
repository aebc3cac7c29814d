// W8A8 linears (TurboDiffusion's Int8Linear): int8 weights with one f32 scale per 128x128 weight tile, activations
// quantized to int8 on the fly, int32 accumulation dequantized per 128-wide K block. Formats: turbodiffusion.md §4.
//
// Activation scheme (differs from TurboDiffusion on purpose): one scale per token per 128 channels ("1x128 groups"),
// not per 128x128 tile. It is at least as accurate (a token with an outlier only coarsens its own row; see
// tests/w8a8_test.cpp ActivationSchemeAccuracy) and it fuses with row-wise norms: the norm kernel that already holds
// a whole token can quantize it without a second pass over memory.
//
// How the DiT should call these (CUDA; CPU takes the same calls with f32 tensors):
//   Int8Act a;                                            // reuse across layers: buffers are (re)allocated on demand
//   layernorm_modulate_quant(x, shift, scale, eps, a);    // norm1/norm2 -> int8 (replaces layernorm_modulate + cast)
//   linear_w8a8(a, q.w, q.s, &q.b, yq);                   // q/k/v projections from the same quantized activation
//   ...
//   linear_w8a8_residual(a_attn, o.w, o.s, &o.b, &gate, x);  // o-proj: x(f32) += gate * (a·w + b), fused
//   layernorm_quant(x, &norm3_w, &norm3_b, eps, a);       // norm3 (affine) -> int8 for cross-attn q
//   layernorm_modulate_quant(x, c_shift, c_scale, eps, a);
//   linear_w8a8_quant(a, ffn0.w, ffn0.s, &ffn0.b, h8, Epilogue::GeluTanh);  // hidden straight to int8
//   linear_w8a8_residual(h8, ffn2.w, ffn2.s, &ffn2.b, &gate, x);
// Inputs that are not quantized yet (attention outputs, the GELU output) go through the Tensor overloads, which
// quantize internally (one extra pass over the activation).
#pragma once

#include "ops/ops.h"

namespace td {
namespace ops {

constexpr int kW8A8Block = 128;  // K block (and weight N block) of the scales

// A quantized activation: q i8 [M, K]; scale f32 [M, K/128] (scale of x[m, 128*j : 128*j+128] is scale[m, j]).
struct Int8Act {
  Tensor q, scale;
  int64_t rows() const { return q.defined() ? q.size(0) : 0; }
  int64_t cols() const { return q.defined() ? q.size(1) : 0; }
};

// y[M,N] = dequant(x[M,K]) · dequant(w)[N,K]^T (+ bias[N]) then the epilogue.
// w_int8: i8 [N, K]; w_scale: f32 [ceil(N/128), ceil(K/128)] (tile amax / 128, see quantize_weight_int8);
// x: CPU f32, CUDA bf16; y: CPU f32, CUDA bf16 or f32. K and N must be multiples of 128 (td::Error otherwise).
// bias: CPU f32; CUDA bf16 or f32.
void linear_w8a8(const Tensor& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep = Epilogue::None);
// Same with an already quantized activation.
void linear_w8a8(const Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep = Epilogue::None);

// Gated residual epilogue (o-proj, ffn.2): resid[M,N] (f32) += gate[N] * (x · w^T + bias). gate f32 [N] (or [1,N]);
// gate == nullptr means a plain residual add. The GEMM result never touches memory.
void linear_w8a8_residual(const Tensor& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid);
void linear_w8a8_residual(const Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid);

// Quantizing epilogue (ffn.0 -> ffn.2): out = int8 (1x128 groups) of ep(x · w^T + bias), quantized from the fp32
// result. On sm_90 (wgmma) the [M, N] hidden activation never goes to memory in bf16; elsewhere a bf16 temporary plus
// quantize_act_int8 (so values are then rounded to bf16 before quantization). out is on x's device.
void linear_w8a8_quant(const Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Int8Act& out,
                       Epilogue ep = Epilogue::None);

// Quantizes a float weight [N, K] (host, any float dtype) exactly as TurboDiffusion does (128x128 tiles, scale =
// amax/128, round to nearest, saturate to [-128, 127]). Outputs host tensors i8 [N,K] and f32 [ceil(N/128), ceil(K/128)].
void quantize_weight_int8(const Tensor& w, Tensor& w_int8, Tensor& w_scale);

// Dynamic activation quantization, 1x128 groups: x [M, K] (CPU f32; CUDA bf16 or f32) -> out.q/out.scale on x's
// device. K must be a multiple of 128. out's tensors are reused when their shape/device already fit.
void quantize_act_int8(const Tensor& x, Int8Act& out);
// (Re)allocates out on `dev` as int8 [rows, cols] with f32 scales [rows, cols / 128] unless it already is so shaped.
void ensure_int8_act(Int8Act& out, int64_t rows, int64_t cols, Device dev);

// Fused norm -> quantize (one pass; the normalised activation never goes to memory):
// LayerNorm (no affine) then *(1+scale)+shift (norm1 / norm2 + adaLN modulation). x [M,D] f32 (CUDA: f32 or bf16);
// shift/scale f32 [D] (or [1,D]).
void layernorm_modulate_quant(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Int8Act& out);
// LayerNorm with optional affine (norm3). weight/bias f32 (CUDA: f32 or bf16) [D], may be null.
void layernorm_quant(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Int8Act& out);

// In place on q or k [L, D] (D = heads*head_dim, head_dim 128): RMSNorm over the whole D (fp32 statistics, weight
// applied in fp32) then Wan's 3-D RoPE per head (as ops::rope3d). CPU f32; CUDA bf16. One pass instead of two.
void rmsnorm_rope3d(Tensor& x, const Tensor& weight, float eps, int heads, int frames, int height, int width,
                    float theta = 10000.f);

// Debug/test entry: c[M,N] (i32) = a[M,K] (i8) · b[N,K]^T (i8), exact int32 accumulation. K multiple of 128 (CUDA).
void gemm_s8s8_s32(const Tensor& a, const Tensor& b, Tensor& c);

}  // namespace ops
}  // namespace td
