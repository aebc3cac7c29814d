// Fused row kernels (see fused_norm_quant.h). One CTA of kRowThreads per row; thread t owns the 4-channel chunks
// t, t+128, t+256, ... so that for a fixed chunk slot a warp covers 128 contiguous channels, i.e. exactly one
// quantization group: the group amax is a warp shuffle reduction, and the normalised row never leaves registers.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cuda/act_int8.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/fused_norm_quant.h"
#include "cuda/w8a8_gemm_config.h"

namespace td {
namespace cuda {

using namespace w8a8cfg;

namespace {

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 ld4(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const __nv_bfloat162 lo = *reinterpret_cast<const __nv_bfloat162*>(&u.x), hi = *reinterpret_cast<const __nv_bfloat162*>(&u.y);
  return make_float4(__low2float(lo), __high2float(lo), __low2float(hi), __high2float(hi));
}
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void st4(__nv_bfloat16* p, float4 v) {
  __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<uint32_t*>(&lo);
  u.y = *reinterpret_cast<uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p) = u;
}
// Optional [D] parameter vector of f32 or bf16 (null -> `dflt`).
__device__ __forceinline__ float4 ld4_param(const void* p, int bf16, int i, float dflt) {
  if (!p) return make_float4(dflt, dflt, dflt, dflt);
  return bf16 ? ld4(static_cast<const __nv_bfloat16*>(p) + i) : ld4(static_cast<const float*>(p) + i);
}

__device__ __forceinline__ float block_sum(float v, float* red) {
#pragma unroll
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // `red` may still be read from a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < kRowThreads / 32; w++) s += red[w];
  return s;
}


// mode 0: (x - mean) * rstd * (1 + p0) + p1   (p0 = scale, p1 = shift; adaLN modulation)
// mode 1: (x - mean) * rstd * p0 + p1         (affine LayerNorm; null p0/p1 -> 1/0)
// One 128-channel group held by a warp (lane l: channels 4c .. 4c + 3 of the row): the normalised values (v - mean) *
// rstd, then (1 + p0) * y + p1 (kMode 0: modulation) or p0 * y + p1 (kMode 1: affine), quantized with the group's
// amax (TurboDiffusion's rounding); the packed int8 go to qrow, the group scale (lane 0) to *gs.
template <int kMode>
__device__ __forceinline__ void norm_quant_group(const float4& v, float mean, float rstd, const void* p0, int p0_bf16,
                                                 const void* p1, int p1_bf16, int c, int8_t* qrow, float* gs,
                                                 int lane) {
  const float4 a = ld4_param(p0, p0_bf16, c * 4, kMode == 0 ? 0.f : 1.f);
  const float4 b = ld4_param(p1, p1_bf16, c * 4, 0.f);
  const float ax = kMode == 0 ? 1.f + a.x : a.x, ay = kMode == 0 ? 1.f + a.y : a.y;
  const float az = kMode == 0 ? 1.f + a.z : a.z, aw = kMode == 0 ? 1.f + a.w : a.w;
  float4 y;
  y.x = (v.x - mean) * rstd * ax + b.x;
  y.y = (v.y - mean) * rstd * ay + b.y;
  y.z = (v.z - mean) * rstd * az + b.z;
  y.w = (v.w - mean) * rstd * aw + b.w;
  float amax = fmaxf(fmaxf(fmaxf(fabsf(y.x), fabsf(y.y)), fmaxf(fabsf(y.z), fabsf(y.w))), 1e-8f);
#pragma unroll
  for (int o = 16; o; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const uint32_t packed = act_int8_pack4(y.x, y.y, y.z, y.w, act_int8_inv(amax));
  reinterpret_cast<uint32_t*>(qrow)[c] = packed;
  if (lane == 0) *gs = act_int8_scale(amax);
}

// kChunks > 0: exactly kChunks chunks per thread (D = kChunks * 512, see with_cta_row_chunks), so no chunk slot is
// conditional: fewer registers, and no convergence code around the group shuffles. kChunks = 0: any D up to
// kRowMaxChunks * 512, decided at run time.
template <typename T, int kMode, int kChunks = 0>
__global__ void __launch_bounds__(kRowThreads) norm_quant_kernel(const T* __restrict__ x, const void* p0, int p0_bf16,
                                                                 const void* p1, int p1_bf16, float eps, int D_rt,
                                                                 int8_t* __restrict__ q, float* __restrict__ s) {
  constexpr int kSlots = kChunks > 0 ? kChunks : kRowMaxChunks;
  const int D = kChunks > 0 ? kChunks * 4 * kRowThreads : D_rt;
  __shared__ float red[kRowThreads / 32];
  const int64_t row = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31;
  const int chunks = D / 4;
  const T* xr = x + row * D;
  float4 v[kSlots];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kSlots; i++) {
    const int c = tid + i * kRowThreads;
    if (kChunks > 0 || c < chunks) {
      v[i] = ld4(xr + c * 4);
      sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
    }
  }
  const float mean = block_sum(sum, red) / float(D);
  float sq = 0.f;  // two-pass variance from registers: no cancellation
#pragma unroll
  for (int i = 0; i < kSlots; i++) {
    const int c = tid + i * kRowThreads;
    if (kChunks > 0 || c < chunks) {
      const float a = v[i].x - mean, b = v[i].y - mean, cc = v[i].z - mean, d = v[i].w - mean;
      sq += (a * a + b * b) + (cc * cc + d * d);
    }
  }
  const float rstd = rsqrtf(block_sum(sq, red) / float(D) + eps);

#pragma unroll
  for (int i = 0; i < kSlots; i++) {
    const int c = tid + i * kRowThreads;
    // A warp's 32 chunks at slot i are one 128-channel group; all lanes of a warp agree on `c < chunks` because
    // D is a multiple of 128.
    if (kChunks > 0 || c < chunks)
      norm_quant_group<kMode>(v[i], mean, rstd, p0, p0_bf16, p1, p1_bf16, c, q + row * D, s + row * (D / 128) + c / 32,
                              lane);
  }
}

// Four channels (two RoPE pairs) of the RMSNorm + RoPE kernels: v * rs * w, then pair j rotated by (cs[j], sn[j]).
__device__ __forceinline__ float4 norm_rope4(const float4& v, float rs, const float4& wv, const float (&cs)[2],
                                             const float (&sn)[2]) {
  float e[4] = {v.x * rs * wv.x, v.y * rs * wv.y, v.z * rs * wv.z, v.w * rs * wv.w};
#pragma unroll
  for (int j = 0; j < 2; j++) {
    const float a = e[2 * j], b = e[2 * j + 1];
    e[2 * j] = a * cs[j] - b * sn[j];
    e[2 * j + 1] = a * sn[j] + b * cs[j];
  }
  return make_float4(e[0], e[1], e[2], e[3]);
}

// In place RMSNorm over the whole row (fp32 stats, weight applied in fp32) then interleaved 3-D RoPE per 128-dim head.
// kChunks as in norm_quant_kernel; kRope = false: the RMSNorm alone (rmsnorm_rows_in_registers).
template <typename T, int kChunks = 0, bool kRope = true>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_rope_kernel(T* __restrict__ x, const void* w, int w_bf16,
                                                                   float eps, int D_rt, int64_t rows, int height,
                                                                   int width, float log2_theta) {
  constexpr int kSlots = kChunks > 0 ? kChunks : kRowMaxChunks;
  const int D = kChunks > 0 ? kChunks * 4 * kRowThreads : D_rt;
  __shared__ float red[kRowThreads / 32];
  // Per pair index within a head (0..63): its axis and inverse frequency theta^(-2 idx / dim), in double as Wan
  // computes them, once per CTA; the CTA then walks rows (grid stride), so the double exp2 no longer runs per element.
  __shared__ double inv_freq[64];
  __shared__ int axis[64];
  const int tid = threadIdx.x;
  if constexpr (kRope) {
    if (tid < 64) {
      int idx, dim;
      if (tid < 22) axis[tid] = 0, idx = tid, dim = 44;
      else if (tid < 43) axis[tid] = 1, idx = tid - 22, dim = 42;
      else axis[tid] = 2, idx = tid - 43, dim = 42;
      inv_freq[tid] = exp2(-2.0 * idx / dim * double(log2_theta));
    }
    __syncthreads();
  }
  const int chunks = D / 4;
  const int hw = height * width;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    T* xr = x + row * D;
    float4 v[kSlots];
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < kSlots; i++) {
      const int c = tid + i * kRowThreads;
      if (kChunks > 0 || c < chunks) {
        v[i] = ld4(xr + c * 4);
        sq += (v[i].x * v[i].x + v[i].y * v[i].y) + (v[i].z * v[i].z + v[i].w * v[i].w);
      }
    }
    const float rs = rsqrtf(block_sum(sq, red) / float(D) + eps);
    if constexpr (!kRope) {
#pragma unroll
      for (int i = 0; i < kSlots; i++) {
        const int c = tid + i * kRowThreads;
        if (kChunks > 0 || c < chunks) {
          const float4 wv = ld4_param(w, w_bf16, c * 4, 1.f);
          st4(xr + c * 4,
              make_float4(v[i].x * rs * wv.x, v[i].y * rs * wv.y, v[i].z * rs * wv.z, v[i].w * rs * wv.w));
        }
      }
      continue;
    }
    // 32-bit index math (rows < 2^31, checked on the host): 64-bit divisions are subroutine calls.
    const int r32 = int(row);
    const int pos3[3] = {r32 / hw, (r32 / width) % height, r32 % width};
    // This thread's chunks c = tid + 128 i all sit at the same place in their heads (4c mod 128 = 4 (tid mod 32)), so
    // its two RoPE pairs, and their sin/cos, are the same for every chunk of the row: one sincos per pair per row
    // instead of one per head (40 per row at 14B).
    float cs[2], sn[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
      const int p = 2 * (tid % 32) + j;  // pair index within the head, 0..63
      // Angle in double as Wan does, then an accurate fp32 sincos of the (small) result.
      sincosf(float(double(pos3[axis[p]]) * inv_freq[p]), &sn[j], &cs[j]);
    }
#pragma unroll
    for (int i = 0; i < kSlots; i++) {
      const int c = tid + i * kRowThreads;
      if (kChunks > 0 || c < chunks) {
        st4(xr + c * 4, norm_rope4(v[i], rs, ld4_param(w, w_bf16, c * 4, 1.f), cs, sn));
      }
    }
  }
}

// Rows of kGroups * 128 channels, kGroups one of the widths with_warp_row_groups compiles (the 1.3B model's 1536 =
// 12 groups): one warp per row, grid-stride. Lane l owns chunks l + 32 i, so chunk slot i across the warp is
// 128-channel group i: group amaxes and row sums are warp shuffles, with no __syncthreads and no per-row CTA launch
// (the CTA-per-row kernels above ran at ~1.3 TB/s). The width is a template parameter: with a run-time group count
// every group's shuffles sat under an `if (i < groups)` the compiler could not prove warp-uniform, so each got
// convergence code around it (WARPSYNC, BSSY/BSYNC), and 16 register slots were kept for 12 used (ncu at 1.3B: 102
// registers, 25% occupancy, 1.8 TB/s).
constexpr int kWarpRowWarps = 8;

// threadIdx.x / 32, in a form the compiler knows to be the same for the whole warp (a broadcast from lane 0). With the
// plain division, the row loop counted as divergent and every shuffle in it got convergence code (WARPSYNC and a
// fallback path).
__device__ __forceinline__ int warp_in_block() { return __shfl_sync(0xffffffffu, int(threadIdx.x) >> 5, 0); }

template <typename T, int kMode, int kGroups>
__global__ void __launch_bounds__(32 * kWarpRowWarps) norm_quant_warp_kernel(const T* __restrict__ x, const void* p0,
                                                                             int p0_bf16, const void* p1, int p1_bf16,
                                                                             float eps, int64_t rows,
                                                                             int8_t* __restrict__ q,
                                                                             float* __restrict__ s) {
  constexpr int D = kGroups * 128;
  const int lane = threadIdx.x & 31;
  const int64_t warp0 = int64_t(blockIdx.x) * kWarpRowWarps + warp_in_block();
  const int64_t nwarps = int64_t(gridDim.x) * kWarpRowWarps;
  for (int64_t row = warp0; row < rows; row += nwarps) {
    const T* xr = x + row * D;
    float4 v[kGroups];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kGroups; i++) {
      v[i] = ld4(xr + (lane + 32 * i) * 4);
      sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float mean = sum / float(D);
    float sq = 0.f;  // two-pass variance from registers: no cancellation
#pragma unroll
    for (int i = 0; i < kGroups; i++) {
      const float a = v[i].x - mean, b = v[i].y - mean, cc = v[i].z - mean, d = v[i].w - mean;
      sq += (a * a + b * b) + (cc * cc + d * d);
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    const float rstd = rsqrtf(sq / float(D) + eps);
#pragma unroll
    for (int i = 0; i < kGroups; i++)
      norm_quant_group<kMode>(v[i], mean, rstd, p0, p0_bf16, p1, p1_bf16, lane + 32 * i, q + row * D,
                              s + row * kGroups + i, lane);
  }
}

// RMSNorm over the row + 3-D RoPE, one warp per row (same layout): lane l's channels 4(l + 32 i) .. +3 are RoPE pairs
// 2l and 2l + 1 of head i, so each lane's two inverse frequencies and axes are fixed for the whole kernel.
// kRope = false: the RMSNorm alone (Wan's cross-attention q/k norm), through rmsnorm_rows_in_registers.
template <typename T, int kGroups, bool kRope = true>
__global__ void __launch_bounds__(32 * kWarpRowWarps) rmsnorm_rope_warp_kernel(T* __restrict__ x, const void* w,
                                                                               int w_bf16, float eps, int64_t rows,
                                                                               int height, int width,
                                                                               float log2_theta) {
  constexpr int D = kGroups * 128;
  const int lane = threadIdx.x & 31;
  double invf[2];
  int ax[2];
#pragma unroll
  for (int j = 0; j < 2; j++) {
    const int p = 2 * lane + j;
    int idx, dim;
    if (p < 22) ax[j] = 0, idx = p, dim = 44;
    else if (p < 43) ax[j] = 1, idx = p - 22, dim = 42;
    else ax[j] = 2, idx = p - 43, dim = 42;
    invf[j] = exp2(-2.0 * idx / dim * double(log2_theta));  // in double, as Wan computes the frequencies
  }
  const int hw = height * width;
  const int64_t warp0 = int64_t(blockIdx.x) * kWarpRowWarps + warp_in_block();
  const int64_t nwarps = int64_t(gridDim.x) * kWarpRowWarps;
  for (int64_t row = warp0; row < rows; row += nwarps) {
    T* xr = x + row * D;
    float4 v[kGroups];
    float sq = 0.f;
#pragma unroll
    for (int i = 0; i < kGroups; i++) {
      v[i] = ld4(xr + (lane + 32 * i) * 4);
      sq += (v[i].x * v[i].x + v[i].y * v[i].y) + (v[i].z * v[i].z + v[i].w * v[i].w);
    }
#pragma unroll
    for (int o = 16; o; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    const float rs = rsqrtf(sq / float(D) + eps);
    if constexpr (!kRope) {
#pragma unroll
      for (int i = 0; i < kGroups; i++) {
        const int c = lane + 32 * i;
        const float4 wv = ld4_param(w, w_bf16, c * 4, 1.f);
        st4(xr + c * 4, make_float4(v[i].x * rs * wv.x, v[i].y * rs * wv.y, v[i].z * rs * wv.z, v[i].w * rs * wv.w));
      }
      continue;
    }
    // 32-bit index math (rows < 2^31, checked on the host): 64-bit divisions are subroutine calls.
    const int r32 = int(row);
    const int pos3[3] = {r32 / hw, (r32 / width) % height, r32 % width};
    float cs[2], sn[2];
#pragma unroll
    for (int j = 0; j < 2; j++) sincosf(float(double(pos3[ax[j]]) * invf[j]), &sn[j], &cs[j]);
#pragma unroll
    for (int i = 0; i < kGroups; i++) {
      const int c = lane + 32 * i;
      st4(xr + c * 4, norm_rope4(v[i], rs, ld4_param(w, w_bf16, c * 4, 1.f), cs, sn));
    }
  }
}

// The CTA-per-row kernels' compiled widths: chunks = D / 512 per thread of 6, 8 or 10 (D = 3072, 4096, 5120; Wan 14B
// has 5120). Calls f(std::integral_constant<int, C>()) for those, f(std::integral_constant<int, 0>()) (run-time width)
// for the rest.
template <class F>
void with_cta_row_chunks(int64_t D, F&& f) {
  switch (D % 512 == 0 ? D / 512 : 0) {
    case 6: f(std::integral_constant<int, 6>()); break;
    case 8: f(std::integral_constant<int, 8>()); break;
    case 10: f(std::integral_constant<int, 10>()); break;
    default: f(std::integral_constant<int, 0>()); break;
  }
}

// Runs f(std::integral_constant<int, G>()) when `groups` is one of the widths the warp-row kernels are compiled for
// (4, 8, 12 and 16 groups of 128 channels; Wan 1.3B has 12) and returns whether it did; other widths take the
// CTA-per-row kernels.
template <class F>
bool with_warp_row_groups(int64_t groups, F&& f) {
  switch (groups) {
    case 4: f(std::integral_constant<int, 4>()); return true;
    case 8: f(std::integral_constant<int, 8>()); return true;
    case 12: f(std::integral_constant<int, 12>()); return true;
    case 16: f(std::integral_constant<int, 16>()); return true;
    default: return false;
  }
}

unsigned warp_row_grid(int64_t rows) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>((rows + kWarpRowWarps - 1) / kWarpRowWarps,
                                                         int64_t(sm_count()) * 8)));
}

void ensure_dev(Tensor& t, const Shape& s, DType dt) {
  if (!t.defined() || t.shape() != s || t.dtype() != dt || !t.is_cuda() || !t.is_contiguous())
    t = Tensor::empty(s, dt, Device::CUDA);
}

int64_t check_rows(const Tensor& x, const char* what) {
  expect_cuda(x, what);
  TD_CHECK((x.dtype() == DType::BF16 || x.dtype() == DType::F32) && x.dim() == 2 && x.is_contiguous(), what,
           "expected contiguous bf16/f32 [M, D], got ", x.describe());
  const int64_t D = x.size(1);
  TD_CHECK(D % 128 == 0 && D <= int64_t(kRowThreads) * kRowMaxChunks * 4, what,
           "D must be a multiple of 128 and at most ", kRowThreads * kRowMaxChunks * 4, ", got ", x.describe());
  TD_CHECK(x.size(0) < (int64_t(1) << 31), what, "too many rows: ", x.describe());
  TD_CHECK(reinterpret_cast<uintptr_t>(x.data()) % 16 == 0, what, "device pointer not 16-byte aligned");
  return D;
}

// A [D] (or [1, D]) f32/bf16 parameter on the GPU; returns its pointer and sets *bf16.
const void* param(const Tensor* t, int64_t D, const char* what, int* bf16, bool f32_only = false) {
  *bf16 = 0;
  if (!t) return nullptr;
  expect_cuda(*t, what);
  TD_CHECK((t->dtype() == DType::F32 || (!f32_only && t->dtype() == DType::BF16)) && t->is_contiguous() &&
               t->numel() == D,
           what, "expected contiguous ", f32_only ? "f32" : "f32/bf16", " [", D, "], got ", t->describe());
  *bf16 = t->dtype() == DType::BF16;
  TD_CHECK(reinterpret_cast<uintptr_t>(t->data()) % 16 == 0, what, "device pointer not 16-byte aligned");
  return t->data();
}

template <int kMode>
void launch_norm_quant(const Tensor& x, const void* p0, int b0, const void* p1, int b1, float eps, ops::Int8Act& out) {
  const int64_t M = x.size(0), D = x.size(1);
  ensure_dev(out.q, {M, D}, DType::I8);
  ensure_dev(out.scale, {M, D / 128}, DType::F32);
  if (M == 0) return;
  const bool warp_rows = with_warp_row_groups(D / 128, [&](auto groups) {
    constexpr int G = decltype(groups)::value;
    const unsigned grid = warp_row_grid(M);
    if (x.dtype() == DType::BF16)
      norm_quant_warp_kernel<__nv_bfloat16, kMode, G><<<grid, 32 * kWarpRowWarps, 0, stream()>>>(
          x.ptr<__nv_bfloat16>(), p0, b0, p1, b1, eps, M, out.q.ptr<int8_t>(), out.scale.ptr<float>());
    else
      norm_quant_warp_kernel<float, kMode, G><<<grid, 32 * kWarpRowWarps, 0, stream()>>>(
          x.ptr<float>(), p0, b0, p1, b1, eps, M, out.q.ptr<int8_t>(), out.scale.ptr<float>());
    TD_CUDA_LAUNCH_CHECK();
  });
  if (warp_rows) return;
  with_cta_row_chunks(D, [&](auto chunks) {
    constexpr int C = decltype(chunks)::value;
    if (x.dtype() == DType::BF16)
      norm_quant_kernel<__nv_bfloat16, kMode, C><<<unsigned(M), kRowThreads, 0, stream()>>>(
          x.ptr<__nv_bfloat16>(), p0, b0, p1, b1, eps, int(D), out.q.ptr<int8_t>(), out.scale.ptr<float>());
    else
      norm_quant_kernel<float, kMode, C><<<unsigned(M), kRowThreads, 0, stream()>>>(
          x.ptr<float>(), p0, b0, p1, b1, eps, int(D), out.q.ptr<int8_t>(), out.scale.ptr<float>());
    TD_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

void layernorm_modulate_quant(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, ops::Int8Act& out) {
  const int64_t D = check_rows(x, "layernorm_modulate_quant x");
  int b0, b1;
  const void* sc = param(&scale, D, "modulation scale", &b0, true);
  const void* sh = param(&shift, D, "modulation shift", &b1, true);
  launch_norm_quant<0>(x, sc, b0, sh, b1, eps, out);
}

void layernorm_quant(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, ops::Int8Act& out) {
  const int64_t D = check_rows(x, "layernorm_quant x");
  int b0, b1;
  const void* w = param(weight, D, "norm weight", &b0);
  const void* b = param(bias, D, "norm bias", &b1);
  launch_norm_quant<1>(x, w, b0, b, b1, eps, out);
}

// The launches behind rmsnorm_rows_in_registers (kRope = false) and rmsnorm_rope3d (kRope = true): one warp per row
// where with_warp_row_groups has the width, else one CTA per row walking rows with the width compiled in; kRope = true
// also has the run-time-width CTA instance (C = 0). Returns false where kRope = false finds no compiled width.
template <bool kRope>
bool launch_rms_rows(Tensor& x, const void* w, int wb, float eps, int64_t L, int64_t D, int height, int width,
                     float l2t) {
  const bool warp_rows = with_warp_row_groups(D / 128, [&](auto groups) {
    constexpr int G = decltype(groups)::value;
    const unsigned grid = warp_row_grid(L);
    if (x.dtype() == DType::BF16)
      rmsnorm_rope_warp_kernel<__nv_bfloat16, G, kRope><<<grid, 32 * kWarpRowWarps, 0, stream()>>>(
          x.ptr<__nv_bfloat16>(), w, wb, eps, L, height, width, l2t);
    else
      rmsnorm_rope_warp_kernel<float, G, kRope><<<grid, 32 * kWarpRowWarps, 0, stream()>>>(x.ptr<float>(), w, wb, eps,
                                                                                          L, height, width, l2t);
    TD_CUDA_LAUNCH_CHECK();
  });
  if (warp_rows) return true;
  // Enough CTAs to fill the GPU (16 per SM at 128 threads), each walking rows.
  const unsigned grid = unsigned(std::min<int64_t>(L, int64_t(sm_count()) * 16));
  bool done = false;
  with_cta_row_chunks(D, [&](auto chunks) {
    constexpr int C = decltype(chunks)::value;
    if constexpr (kRope || C > 0) {
      if (x.dtype() == DType::BF16)
        rmsnorm_rope_kernel<__nv_bfloat16, C, kRope><<<grid, kRowThreads, 0, stream()>>>(
            x.ptr<__nv_bfloat16>(), w, wb, eps, int(D), L, height, width, l2t);
      else
        rmsnorm_rope_kernel<float, C, kRope><<<grid, kRowThreads, 0, stream()>>>(x.ptr<float>(), w, wb, eps, int(D),
                                                                                 L, height, width, l2t);
      TD_CUDA_LAUNCH_CHECK();
      done = true;
    }
  });
  return done;
}

bool rmsnorm_rows_in_registers(Tensor& x, const Tensor& weight, float eps) {
  if (!x.is_cuda() || (x.dtype() != DType::BF16 && x.dtype() != DType::F32) || x.dim() != 2 || !x.is_contiguous() ||
      x.size(1) % 128 != 0 || x.size(0) >= (int64_t(1) << 31) || reinterpret_cast<uintptr_t>(x.data()) % 16 != 0 ||
      !weight.is_cuda() || !weight.is_contiguous() || weight.numel() != x.size(1) ||
      (weight.dtype() != DType::F32 && weight.dtype() != DType::BF16) ||
      reinterpret_cast<uintptr_t>(weight.data()) % 16 != 0)
    return false;
  const int64_t L = x.size(0), D = x.size(1);
  if (L == 0) return true;
  return launch_rms_rows<false>(x, weight.data(), weight.dtype() == DType::BF16, eps, L, D, 1, 1, 0.f);
}

void rmsnorm_rope3d(Tensor& x, const Tensor& weight, float eps, int heads, int frames, int height, int width,
                    float theta) {
  const int64_t D = check_rows(x, "rmsnorm_rope3d x");
  const int64_t L = x.size(0);
  TD_CHECK(heads > 0 && D == int64_t(heads) * 128, "rmsnorm_rope3d x", "expected [L, heads*128] with heads=", heads,
           ", got ", x.describe());
  TD_CHECK(frames > 0 && height > 0 && width > 0 && int64_t(frames) * height * width == L, "rmsnorm_rope3d x", "L=",
           L, " but the grid is ", frames, "x", height, "x", width);
  int wb;
  const void* w = param(&weight, D, "rmsnorm weight", &wb);
  if (L == 0) return;
  launch_rms_rows<true>(x, w, wb, eps, L, D, height, width, std::log2(theta));
}

}  // namespace cuda
}  // namespace td
