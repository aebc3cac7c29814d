#include "core/dtype.h"

#include "core/error.h"

namespace td {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::F8E4M3: case DType::F8E5M2: case DType::Bool: return 1;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::I16: return "i16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::F8E4M3: return "f8e4m3";
    case DType::F8E5M2: return "f8e5m2";
    case DType::Bool: return "bool";
  }
  return "?";
}

namespace {
struct NameMap {
  const char* name;
  DType dt;
};
const NameMap kSafetensorsNames[] = {
    {"F32", DType::F32}, {"F64", DType::F64},       {"BF16", DType::BF16},       {"F16", DType::F16},
    {"I8", DType::I8},   {"U8", DType::U8},         {"I16", DType::I16},         {"I32", DType::I32},
    {"I64", DType::I64}, {"F8_E4M3", DType::F8E4M3}, {"F8_E5M2", DType::F8E5M2}, {"BOOL", DType::Bool},
};
}  // namespace

bool dtype_from_safetensors(const std::string& s, DType* out) {
  for (const auto& m : kSafetensorsNames)
    if (s == m.name) {
      *out = m.dt;
      return true;
    }
  return false;
}

const char* dtype_safetensors_name(DType dt) {
  for (const auto& m : kSafetensorsNames)
    if (m.dt == dt) return m.name;
  return "?";
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while ((man & 0x400) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13;
  } else {
    u = sign | (exp + 112) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t absu = u & 0x7fffffff;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // overflow -> inf (after rounding)
  if (absu < 0x38800000u) {                                  // subnormal or zero in f16
    float a;
    std::memcpy(&a, &absu, 4);
    // 2^-24 is the f16 subnormal step; nearbyint rounds to even in the default mode.
    return uint16_t(sign | uint32_t(std::nearbyint(a * 16777216.0f)));
  }
  uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u);
  return uint16_t(sign | ((r - 0x38000000u) >> 13));
}

float f8e4m3_to_f32(uint8_t v) {
  uint32_t sign = v >> 7;
  uint32_t exp = (v >> 3) & 0xf;
  uint32_t man = v & 7;
  if (exp == 15 && man == 7) return NAN;
  float mag = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(float(8 + man), int(exp) - 10);
  return sign ? -mag : mag;
}

uint8_t f32_to_f8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;  // saturate to max finite
  // Find the nearest representable value by rounding in the value's binade (ties to even mantissa).
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5,1)
  int exp_unbiased = e - 1;  // a in [2^exp, 2^(exp+1))
  if (exp_unbiased < -6) exp_unbiased = -6;  // subnormal range shares the step 2^-9
  float step = std::ldexp(1.0f, exp_unbiased - 3);
  float q = std::nearbyint(a / step) * step;
  if (q == 0.0f) return sign;
  int qe;
  std::frexp(q, &qe);
  int qexp = qe - 1;
  if (qexp < -6) {  // subnormal
    return sign | uint8_t(q / std::ldexp(1.0f, -9));
  }
  uint32_t man = uint32_t(q / std::ldexp(1.0f, qexp - 3)) - 8;
  return sign | uint8_t((qexp + 7) << 3) | uint8_t(man);
}

float f8e5m2_to_f32(uint8_t v) { return f16_to_f32(uint16_t(v) << 8); }

void convert_to_f32(const void* src, DType dt, float* dst, size_t n) {
  switch (dt) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: { auto s = static_cast<const double*>(src); for (size_t i = 0; i < n; i++) dst[i] = float(s[i]); return; }
    case DType::BF16: { auto s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]); return; }
    case DType::F16: { auto s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]); return; }
    case DType::I8: { auto s = static_cast<const int8_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = float(s[i]); return; }
    case DType::U8: case DType::Bool: { auto s = static_cast<const uint8_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = float(s[i]); return; }
    case DType::I16: { auto s = static_cast<const int16_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = float(s[i]); return; }
    case DType::I32: { auto s = static_cast<const int32_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = float(s[i]); return; }
    case DType::I64: { auto s = static_cast<const int64_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = float(s[i]); return; }
    case DType::F8E4M3: { auto s = static_cast<const uint8_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = f8e4m3_to_f32(s[i]); return; }
    case DType::F8E5M2: { auto s = static_cast<const uint8_t*>(src); for (size_t i = 0; i < n; i++) dst[i] = f8e5m2_to_f32(s[i]); return; }
  }
}

void convert_from_f32(const float* src, void* dst, DType dt, size_t n) {
  switch (dt) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: { auto d = static_cast<double*>(dst); for (size_t i = 0; i < n; i++) d[i] = src[i]; return; }
    case DType::BF16: { auto d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]); return; }
    case DType::F16: { auto d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]); return; }
    case DType::F8E4M3: { auto d = static_cast<uint8_t*>(dst); for (size_t i = 0; i < n; i++) d[i] = f32_to_f8e4m3(src[i]); return; }
    case DType::I32: { auto d = static_cast<int32_t*>(dst); for (size_t i = 0; i < n; i++) d[i] = int32_t(std::lrint(src[i])); return; }
    case DType::I64: { auto d = static_cast<int64_t*>(dst); for (size_t i = 0; i < n; i++) d[i] = int64_t(std::llrint(src[i])); return; }
    case DType::I8: { auto d = static_cast<int8_t*>(dst); for (size_t i = 0; i < n; i++) d[i] = int8_t(std::lrint(src[i])); return; }
    default: fail("convert", cat("cannot convert f32 to ", dtype_name(dt)));
  }
}

}  // namespace td
