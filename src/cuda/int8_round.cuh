// SageAttention's int8 rounding (half away from zero, saturated to [-127, 127]) on the FMA and integer pipes.
// roundf + a float -> int conversion cost two XU-pipe instructions per value (FRND.TRUNC + F2I.TRUNC; the XU pipe
// gives 16 results per clock per SM on sm_90 and also runs the softmax's exponentials): in the sparse kernels' Q
// prologue that was as much XU work per CTA as one key block's exponentials. Here the rounding is two adds in
// round-toward-zero mode: |x| + 0.5 rounded toward zero never reaches an integer the exact sum does not, and adding
// 1.5 * 2^23 toward zero then truncates, leaving floor(|x| + 0.5) in the low mantissa bits; the sign is applied in
// two's complement. Same result as fminf(127, fmaxf(-127, roundf(x))) for every non-NaN x (NaN gives 127 or -127
// by its sign bit).
// Internal to src/cuda.
#pragma once

#include <cstdint>

namespace td {
namespace cuda {

// The int8 of x in the low byte of the result (the other bytes are not zero).
__device__ __forceinline__ uint32_t int8_half_away_bits(float x) {
  const float a = __fadd_rz(fminf(fabsf(x), 127.f), 0.5f);
  const uint32_t n = __float_as_uint(__fadd_rz(a, 12582912.f));  // 1.5 * 2^23 + floor(|x| + 0.5)
  const uint32_t s = uint32_t(__float_as_int(x) >> 31);         // 0 or all ones
  return (n ^ s) - s;                                            // -n where x is negative
}

// Four such values' low bytes packed into one word (a in the lowest byte).
__device__ __forceinline__ uint32_t pack_low_bytes(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return __byte_perm(__byte_perm(a, b, 0x0040), __byte_perm(c, d, 0x0040), 0x5410);
}

}  // namespace cuda
}  // namespace td
