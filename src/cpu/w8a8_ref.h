// CPU reference for the W8A8 path (see ops/w8a8.h for the semantics). Everything here is exact or fp32 and is the
// oracle the CUDA kernels are tested against.
#pragma once

#include <cstdint>

#include "ops/w8a8.h"

namespace td {
namespace cpu {

// TurboDiffusion's quantizer on one block of values: amax = max(|x|, 1e-8), q = rn_sat(x * (128/amax)), scale =
// amax/128. Round to nearest even (cvt.rni), saturating to [-128, 127]; NaN becomes 0 (as cvt.sat does).
float quantize_block_int8(const float* x, int64_t rows, int64_t cols, int64_t ld, int8_t* q, int64_t ldq);
inline int8_t quantize_one_int8(float v, float inv) {
  float r = std::nearbyint(v * inv);  // default FE_TONEAREST: ties to even
  if (!(r == r)) return 0;
  if (r > 127.f) return 127;
  if (r < -128.f) return -128;
  return int8_t(r);
}

// Quantizes f32 x[M, K] (contiguous) in blocks of block_rows x 128 columns: q i8 [M, K], scale f32
// [ceil(M/block_rows), ceil(K/128)]. block_rows = 128 is TurboDiffusion's activation/weight scheme, 1 is ours.
void quantize_blocks_int8(const float* x, int64_t M, int64_t K, int64_t block_rows, int8_t* q, float* scale);

// Exact int32 GEMM: c[M,N] = a[M,K] · b[N,K]^T.
void gemm_s8s8_s32(const int8_t* a, const int8_t* b, int32_t* c, int64_t M, int64_t N, int64_t K);

// Dequantizing GEMM as the kernels do it: for each 128-wide K block kb,
//   acc += float(int32 partial) * (a_scale[m / a_block_rows, kb] * w_scale[n / 128, kb]);
// then y = acc (+ bias[n]) and the epilogue. y f32 [M, N]. a_block_rows 1 (ours) or 128 (TurboDiffusion).
void gemm_w8a8_f32(const int8_t* a, const float* a_scale, int64_t a_block_rows, const int8_t* w, const float* w_scale,
                   const float* bias, float* y, int64_t M, int64_t N, int64_t K, Epilogue ep);

float gelu_tanh_ref(float v);

// Tensor-level entry points behind ops:: (host f32 activations).
void quantize_act_int8(const Tensor& x, ops::Int8Act& out);
void linear_w8a8(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep);
void linear_w8a8_residual(const ops::Int8Act& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias,
                          const Tensor* gate, Tensor& resid);
void layernorm_modulate_quant(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, ops::Int8Act& out);
void layernorm_quant(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, ops::Int8Act& out);
void rmsnorm_rope3d(Tensor& x, const Tensor& weight, float eps, int heads, int frames, int height, int width,
                    float theta);
void gemm_s8s8_s32(const Tensor& a, const Tensor& b, Tensor& c);

// Shared argument checks (used by the CUDA dispatch too): names the offending tensor.
void check_w8a8_weight(const Tensor& w_int8, const Tensor& w_scale, int64_t K);

}  // namespace cpu
}  // namespace td
