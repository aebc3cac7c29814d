// The per-token and per-CTA pieces of the linear branch's k/v pass, shared by its mma.sync kernel
// (sla_attention.cu, linear_kv_kernel) and its wgmma kernel (sla_linear_kv_sm90.cu). Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_bf16.h>
#include <cstdint>

#include "cuda/sla_mma.cuh"

namespace td {
namespace cuda {
namespace sla {

// The column statistics one thread gathers over the rows it touches, for its 8 columns: z = sum phi(k) (from the
// bf16-rounded phi that the MMA sees), sum k, and amax |v|.
struct KvColumnSums {
  float z[8], ksum[8], vmax[8];
  __device__ __forceinline__ void clear() {
#pragma unroll
    for (int e = 0; e < 8; e++) z[e] = ksum[e] = vmax[e] = 0.f;
  }
};

// phi = softmax over the head dim of one token row, for this thread's 16-byte chunk of it (8 channels of k; kCh
// lanes of one warp share the row, aligned on kCh). Returns the chunk's bf16 phi (zero for an invalid row) and adds
// the chunk to the column sums. The exponentials use this thread's own maximum, so they do not wait for the row's (a
// shuffle chain); the partial sums are rescaled by 2^(m - M) once M is known, as an online softmax does.
template <int kCh>
__device__ __forceinline__ uint4 phi_chunk(uint4 kw, uint4 vw, bool valid, KvColumnSums& cs) {
  float x[8];
  {
    const __nv_bfloat162* k2 = reinterpret_cast<const __nv_bfloat162*>(&kw);
    const __nv_bfloat162* v2 = reinterpret_cast<const __nv_bfloat162*>(&vw);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const float2 kf = __bfloat1622float2(k2[e]), vf = __bfloat1622float2(v2[e]);
      x[2 * e] = kf.x;
      x[2 * e + 1] = kf.y;
      cs.vmax[2 * e] = fmaxf(cs.vmax[2 * e], fabsf(vf.x));
      cs.vmax[2 * e + 1] = fmaxf(cs.vmax[2 * e + 1], fabsf(vf.y));
    }
  }
  float m = -INFINITY;
#pragma unroll
  for (int e = 0; e < 8; e++) {
    cs.ksum[e] += x[e];  // rows past the data are zero-filled
    m = fmaxf(m, x[e]);
  }
  constexpr float kLog2e = 1.4426950408889634f;
  const float mb = m * kLog2e;
  float sum = 0.f;
#pragma unroll
  for (int e = 0; e < 8; e++) sum += (x[e] = ex2_ftz(fmaf(x[e], kLog2e, -mb)));
  float mrow = m;
#pragma unroll
  for (int sft = 1; sft < kCh; sft <<= 1) mrow = fmaxf(mrow, __shfl_xor_sync(0xffffffffu, mrow, sft));
  const float rescale = ex2_ftz((m - mrow) * kLog2e);
  sum *= rescale;
#pragma unroll
  for (int sft = 1; sft < kCh; sft <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, sft);
  // sum is in [1, D], where the fast division is accurate to 2 ulp.
  const float inv = valid ? __fdividef(rescale, sum) : 0.f;
  uint32_t w[4];
#pragma unroll
  for (int e = 0; e < 4; e++) {
    const __nv_bfloat162 b2 = __floats2bfloat162_rn(x[2 * e] * inv, x[2 * e + 1] * inv);
    const float2 f = __bfloat1622float2(b2);
    cs.z[2 * e] += f.x;
    cs.z[2 * e + 1] += f.y;
    w[e] = *reinterpret_cast<const uint32_t*>(&b2);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// Adds this CTA's column sums of head h into z, ksum (if non-null) and vmax (if non-null; an atomic max): shared-memory
// atomics first (every thread of chunk q holds columns q * 8 .. + 7), then one global atomic per column. red_s must be
// zero and visible to all threads before the first call; all NT threads call this.
template <int D, int NT>
__device__ __forceinline__ void flush_column_sums(const KvColumnSums& cs, int q, int h, float (&red_s)[3][D],
                                                  float* z, float* ksum, float* vmax) {
#pragma unroll
  for (int e = 0; e < 8; e++) {
    const int col = q * 8 + e;
    atomicAdd(&red_s[0][col], cs.z[e]);
    if (ksum) atomicAdd(&red_s[1][col], cs.ksum[e]);
    if (vmax)  // non-negative floats order like their bit patterns
      atomicMax(reinterpret_cast<int*>(&red_s[2][col]), __float_as_int(cs.vmax[e]));
  }
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += NT) {
    atomicAdd(z + h * D + d, red_s[0][d]);
    if (ksum) atomicAdd(ksum + h * D + d, red_s[1][d]);
    if (vmax) atomicMax(reinterpret_cast<int*>(vmax) + h * D + d, __float_as_int(red_s[2][d]));
  }
}

// out[0..1] += (x, y): one vector atomic where the GPU has them (sm_90+), two scalar ones elsewhere.
__device__ __forceinline__ void atomic_add2(float* out, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(out), make_float2(x, y));
#else
  atomicAdd(out, x);
  atomicAdd(out + 1, y);
#endif
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
