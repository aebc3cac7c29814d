// Device and host helpers shared by the elementwise/norm kernels: row views of tensors, 8-wide vector loads and
// stores of f32/bf16/f16, warp reductions. Internal to src/cuda (not part of any op's interface).
#pragma once

#include <cstdint>

#include "cuda/cuda_common.cuh"

namespace td {
namespace cuda {
namespace detail {

// A tensor seen as M rows of D contiguous elements with a row stride `ld` (elements). 2-D views may have any row
// stride (e.g. a column slice of a fused projection); anything else must be contiguous and is flattened.
struct Rows {
  int64_t M = 0, D = 0, ld = 0;
};

inline Rows rows_of(const Tensor& t, const std::string& what) {
  TD_CHECK(t.dim() >= 1, what, t.describe(), " must have at least one dimension");
  Rows r;
  r.D = t.size(-1);
  if (t.dim() == 2 && t.strides()[1] == 1 && t.strides()[0] >= t.size(1)) {
    r.M = t.size(0);
    r.ld = t.strides()[0];
  } else {
    TD_CHECK(t.is_contiguous(), what, t.describe(), " must be contiguous (or a row-strided 2-D view)");
    r.M = r.D ? t.numel() / r.D : 0;
    r.ld = r.D;
  }
  return r;
}

inline void expect_dtype_in(const Tensor& t, const std::string& what, std::initializer_list<DType> ok) {
  for (DType d : ok)
    if (t.dtype() == d) return;
  fail(what, cat(t.describe(), ": unsupported dtype ", dtype_name(t.dtype())));
}

// A small vector (shift/scale/gate/weight) with exactly D contiguous elements on the device, f32 or bf16.
inline void expect_param(const Tensor& t, int64_t D, const std::string& what) {
  expect_cuda(t, what.c_str());
  TD_CHECK(t.numel() == D && t.is_contiguous(), what, t.describe(), " must have ", D, " contiguous elements");
  expect_dtype_in(t, what, {DType::F32, DType::BF16});
}

// 16-byte vector path only when every row start is 16-byte aligned.
inline bool rows_aligned16(const void* p, int64_t ld, size_t elem) {
  return (reinterpret_cast<uintptr_t>(p) % 16 == 0) && ((ld * int64_t(elem)) % 16 == 0);
}

// ---- device side ----

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

// 8 consecutive elements <-> 8 floats. p must be 16-byte aligned (32 for f32 is not needed: two 16-byte loads).
__device__ __forceinline__ void load8(const float* p, float* v) {
  float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
template <typename T16>
__device__ __forceinline__ void load8(const T16* p, float* v) {
  uint4 u = *reinterpret_cast<const uint4*>(p);
  const T16* h = reinterpret_cast<const T16*>(&u);
#pragma unroll
  for (int i = 0; i < 8; i++) v[i] = to_f(h[i]);
}
__device__ __forceinline__ void store8(float* p, const float* v) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  *reinterpret_cast<float4*>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}
template <typename T16>
__device__ __forceinline__ void store8(T16* p, const float* v) {
  uint4 u;
  T16* h = reinterpret_cast<T16*>(&u);
#pragma unroll
  for (int i = 0; i < 8; i++) h[i] = from_f<T16>(v[i]);
  *reinterpret_cast<uint4*>(p) = u;
}

// Parameter vectors come as f32 or bf16 (weights are bf16 on the device, modulation vectors f32).
__device__ __forceinline__ float ld_param(const void* p, bool bf16, int64_t j) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[j]) : static_cast<const float*>(p)[j];
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace detail
}  // namespace cuda
}  // namespace td
