// The W8A8 activation quantization rule (TurboDiffusion's; ops::quantize_act_int8), in one place for every kernel
// that quantizes an activation: norm -> int8, the quantize pass, the GEMM's int8-output epilogue and the attention
// kernels' int8 outputs. Per 128-channel group with amax = max |v| (callers floor it at 1e-8): scale = amax / 128,
// code = round-to-nearest-even(v * 128 / amax) saturated to [-128, 127] (cvt.rni.sat.s8 semantics, NaN -> 0).
// Internal to src/cuda.
#pragma once

#include <cstdint>

namespace td {
namespace cuda {

// The multiplier applied to each value of a group, and the scale stored for it.
__device__ __forceinline__ float act_int8_inv(float amax) { return __fdiv_rn(128.f, amax); }
// amax / 128 as a multiply: exact (a power of two, and amax >= 1e-8 keeps the result normal), without the division's
// special-case check and slow-path call.
__device__ __forceinline__ float act_int8_scale(float amax) { return amax * 0.0078125f; }

__device__ __forceinline__ int act_int8_code(float v, float inv) { return min(max(__float2int_rn(v * inv), -128), 127); }

// Two / four codes packed little-endian (first value in the lowest byte).
__device__ __forceinline__ uint16_t act_int8_pack2(float x, float y, float inv) {
  return uint16_t((act_int8_code(x, inv) & 0xff) | ((act_int8_code(y, inv) & 0xff) << 8));
}
__device__ __forceinline__ uint32_t act_int8_pack4(float x, float y, float z, float w, float inv) {
  return uint32_t(act_int8_code(x, inv) & 0xff) | (uint32_t(act_int8_code(y, inv) & 0xff) << 8) |
         (uint32_t(act_int8_code(z, inv) & 0xff) << 16) | (uint32_t(act_int8_code(w, inv) & 0xff) << 24);
}

}  // namespace cuda
}  // namespace td
