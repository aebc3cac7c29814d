// W8A8 linears (TurboDiffusion's Int8Linear): int8 weights with one f32 scale per 128x128 weight tile, activations
// quantized to int8 on the fly, int32 accumulation dequantized per 128-wide K block. Formats: turbodiffusion.md §4.
#pragma once

#include "ops/ops.h"

namespace td {
namespace ops {

// y[M,N] = dequant(x[M,K]) · dequant(w)[N,K]^T (+ bias[N]) then the epilogue.
// w_int8: i8 [N, K]; w_scale: f32 [ceil(N/128), ceil(K/128)] (tile amax / 128, see quantize_weight_int8);
// x: CPU f32, CUDA bf16; y: CPU f32, CUDA bf16 or f32. K and N must be multiples of 128 (td::Error otherwise).
void linear_w8a8(const Tensor& x, const Tensor& w_int8, const Tensor& w_scale, const Tensor* bias, Tensor& y,
                 Epilogue ep = Epilogue::None);

// Quantizes a float weight [N, K] (host, any float dtype) exactly as TurboDiffusion does (128x128 tiles, scale =
// amax/128, round to nearest, saturate to [-128, 127]). Outputs host tensors i8 [N,K] and f32 [ceil(N/128), ceil(K/128)].
void quantize_weight_int8(const Tensor& w, Tensor& w_int8, Tensor& w_scale);

}  // namespace ops
}  // namespace td
