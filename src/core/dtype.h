// Element types and scalar conversions (host side). Device code has its own intrinsics.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace td {

enum class DType : uint8_t { F32, F64, BF16, F16, I8, U8, I16, I32, I64, F8E4M3, F8E5M2, Bool };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);  // "f32", "bf16", ...
// Parses names used by safetensors ("F32", "BF16", "I8", "F8_E4M3", ...). Returns false if unknown.
bool dtype_from_safetensors(const std::string& s, DType* out);
const char* dtype_safetensors_name(DType dt);
inline bool dtype_is_float(DType dt) {
  return dt == DType::F32 || dt == DType::F64 || dt == DType::BF16 || dt == DType::F16 || dt == DType::F8E4M3 ||
         dt == DType::F8E5M2;
}

// ---- scalar conversions (round to nearest even, like PyTorch) ----
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
// FP8 e4m3 "fn" variant (no infinities, max 448, NaN = 0x7f/0xff), saturating like torch's cast of finite values.
float f8e4m3_to_f32(uint8_t v);
uint8_t f32_to_f8e4m3(float f);
float f8e5m2_to_f32(uint8_t v);

// Converts n elements of any numeric dtype to f32 / from f32.
void convert_to_f32(const void* src, DType dt, float* dst, size_t n);
void convert_from_f32(const float* src, void* dst, DType dt, size_t n);

}  // namespace td
