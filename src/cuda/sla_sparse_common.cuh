// Pieces shared by the two sparse-kernel families (sla_sparse.cu: mma.sync and in-loop wgmma; sla_sparse_pipelined.cu
// and sla_sparse_compact.cu: the bulk-copy wgmma kernels): the per-tile int8 quantization of Q, the online-softmax
// step, and the mma.sync kernels' epilogue. Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_bf16.h>
#include <cstdint>

#include "cuda/int8_round.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_sparse.cuh"

namespace td {
namespace cuda {
namespace sla {

// Starts the cp.async copy of the CTA's bf16 Q tile (BQ rows of head h from token q0; rows of 2D bytes, Swz<2D>)
// into qs as one commit group; rows past L are zero-filled.
template <int BQ, int D, int kThreads>
__device__ __forceinline__ void load_q_tile_async(const SparseArgs& a, uint8_t* qs, int q0, int h) {
  constexpr int kCh = D / 8;
  for (int idx = threadIdx.x; idx < BQ * kCh; idx += kThreads) {
    const int r = idx / kCh, ch = idx % kCh, t = q0 + r;
    const int64_t row = (int64_t(t < a.L ? t : a.L - 1) * a.H + h) * D + ch * 8;
    cp_async16(qs + Swz<D * 2>::offset(r, ch), a.q + row, t < a.L ? 16 : 0);
  }
  cp_async_commit();
}

// Per-tile int8 quantization of Q (TurboDiffusion's per-block scale): scale = amax / 127 + 1e-7, round half away
// from zero. qs: the bf16 tile (rows of 2D bytes, Swz<2D>), qi: the int8 tile (rows of D bytes, Swz<D>). `red` holds
// one float per warp. Every thread of the CTA calls it; it ends with a barrier, so qi is ready for ldmatrix.
template <int BQ, int D, int kThreads>
__device__ __forceinline__ float quantize_q_tile(const uint8_t* qs, uint8_t* qi, float* red) {
  constexpr int kWarps = kThreads / 32;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  float mx = 0.f;
  const uint4* qraw = reinterpret_cast<const uint4*>(qs);
  for (int idx = tid; idx < BQ * D / 8; idx += kThreads) {
    uint4 u = qraw[idx];
    const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float2 f = __bfloat1622float2(p[e]);
      mx = fmaxf(mx, fmaxf(fabsf(f.x), fabsf(f.y)));
    }
  }
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, s));
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
#pragma unroll
  for (int w = 1; w < kWarps; w++) mx = fmaxf(mx, red[w]);
  const float qscale = mx / 127.f + 1e-7f;
  // x * (1 / scale) rather than x / scale: an IEEE division (a ~10-instruction sequence) per value sat in this loop,
  // which took ~7% of the pipelined kernel's stall samples. The two differ by at most an ulp before rounding, i.e.
  // only for values within an ulp of a rounding boundary.
  const float inv_scale = 1.f / qscale;
  constexpr int kCh16 = D / 16;
  for (int idx = tid; idx < BQ * kCh16; idx += kThreads) {
    const int r = idx / kCh16, c16 = idx % kCh16;
    uint4 u[2] = {*reinterpret_cast<const uint4*>(qs + Swz<D * 2>::offset(r, 2 * c16)),
                  *reinterpret_cast<const uint4*>(qs + Swz<D * 2>::offset(r, 2 * c16 + 1))};
    const __nv_bfloat16* x = reinterpret_cast<const __nv_bfloat16*>(u);
    uint32_t w[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
      uint32_t b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) b[i] = int8_half_away_bits(__bfloat162float(x[e * 4 + i]) * inv_scale);
      w[e] = pack_low_bytes(b[0], b[1], b[2], b[3]);
    }
    *reinterpret_cast<uint4*>(qi + Swz<D>::offset(r, c16)) = make_uint4(w[0], w[1], w[2], w[3]);
  }
  __syncthreads();
  return qscale;
}

// The online-softmax step shared by the SageSLA kernels, from this thread's int32 row maxima mi (rows g and g + 8
// of its m16 fragment, before the quad reduction): the rows' new maxima m_r (base 2, scaled by f > 0, so the max
// commutes with the scale), o's rescale alpha, and the FFMA bias that turns a score s into
// ex2((1.5*2^23 + s) f - bias) = 448 * 2^(s f - m): the int32 leaves through the bits of 1.5*2^23 + s (exact for
// |s| < 2^22) and 448 is folded into the exponent for e4m3.
__device__ __forceinline__ void int_softmax_update(int (&mi)[2], float f, float (&m_r)[2], float (&alpha)[2],
                                                   float (&bias)[2]) {
#pragma unroll
  for (int r = 0; r < 2; r++) {
    mi[r] = max(mi[r], __shfl_xor_sync(0xffffffffu, mi[r], 1));
    mi[r] = max(mi[r], __shfl_xor_sync(0xffffffffu, mi[r], 2));
    const float mn = fmaxf(m_r[r], float(mi[r]) * f);  // every row has a valid key in every block
    alpha[r] = ex2_ftz(m_r[r] - mn);                    // first block: ex2(-inf) = 0
    m_r[r] = mn;
    bias[r] = fmaf(12582912.f, f, mn) - sla_cfg::kLog2Fp8Max;
  }
}

// The two-level accumulation (SageAttention2) of the wgmma kernels: a key block's fresh fp32 P·V chain t and its
// tensor-core row sums ls (every column of the n8 ones tile holds the sum) join the running o and l after their
// rescale by alpha.
template <int D>
__device__ __forceinline__ void accumulate_block(float (&o)[D / 8][4], float (&l_r)[2], const float (&t)[D / 2],
                                                 const float (&ls)[4], const float (&alpha)[2]) {
  l_r[0] = fmaf(l_r[0], alpha[0], ls[0]);
  l_r[1] = fmaf(l_r[1], alpha[1], ls[2]);
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) o[n][e] = fmaf(o[n][e], alpha[e / 2], t[4 * n + e]);
}

// Shared memory the epilogue needs at `epi` when the linear branch is on: the KVW tile, z and the bias.
template <int D>
constexpr int epilogue_bytes() {
  return D * D * 2 + 2 * D * 4;
}

// o = O_s / l (times V's per-channel scale for SageSLA) + (phi(q) · KVW) / den + b, stored as bf16 rows of a.o.
// l_r holds whole-row sums. KVW = (phi(k)^T v) W^T was folded per head beforehand; phi(q) is rebuilt from the bf16
// Q tile still in shared memory (qs, Swz<2D>), and den = 1e-5 + phi(q)·z. The mma accumulates phi(q)·KVW directly
// into O_s·den, so no second accumulator is live. `epi` may alias the K/V ring: the barrier at the start makes sure
// every warp is done with it. This thread owns rows warp*16 + g (+ 8) of the tile, as in the m16 fragments.
template <int D, bool QUANT, int kThreads>
__device__ __forceinline__ void sparse_epilogue(const SparseArgs& a, float (&o)[D / 8][4], const float (&l_r)[2],
                                                const uint8_t* qs, uint8_t* epi, int h, int q0) {
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const bool linear = a.kvwt != nullptr;
  float* zs = reinterpret_cast<float*>(epi + D * D * 2);
  float* bs = zs + D;
  if (linear) {
    __syncthreads();
    constexpr int kCh = D / 8;
    for (int idx = tid; idx < D * kCh; idx += kThreads) {
      const int r = idx / kCh, ch = idx % kCh;
      cp_async16(epi + Swz<D * 2>::offset(r, ch), a.kvwt + (int64_t(h) * D + r) * D + ch * 8, 16);
    }
    cp_async_commit();
    for (int d = tid; d < D; d += kThreads) {
      zs[d] = a.z[int64_t(h) * D + d];
      bs[d] = a.bias ? a.bias[d] : 0.f;
    }
    cp_async_wait<0>();
    __syncthreads();
  }

  // Sparse branch normalisation (and V's per-channel scale).
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float f = 1.f / l_r[e / 2];
      if constexpr (QUANT) {
        const float vm = a.vmax[int64_t(h) * D + n * 8 + 2 * t4 + (e & 1)];
        f *= vm > 0.f ? vm / sla_cfg::kFp8Max : 1.f;  // l_r sums 448 p: P's 1/448 is in 1/l
      }
      o[n][e] *= f;
    }

  if (linear) {
    const int rows[2] = {warp * 16 + g, warp * 16 + g + 8};
    auto qv = [&](int r, int d) {
      return __bfloat162float(
          *reinterpret_cast<const __nv_bfloat16*>(qs + Swz<D * 2>::offset(rows[r], d / 8) + (d % 8) * 2));
    };
    // phi(q) = softmax over the head dim; this thread sees dims {16ks + 2t4, +1, +8, +9} of its two rows.
    float mx[2] = {-INFINITY, -INFINITY}, sm[2] = {0.f, 0.f}, den[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int e = 0; e < 4; e++) mx[r] = fmaxf(mx[r], qv(r, ks * 16 + 2 * t4 + (e & 1) + (e / 2) * 8));
      mx[r] = quad_max(mx[r]);
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int e = 0; e < 4; e++) sm[r] += __expf(qv(r, ks * 16 + 2 * t4 + (e & 1) + (e / 2) * 8) - mx[r]);
      sm[r] = 1.f / quad_sum(sm[r]);
      // phi is rounded to bf16 (as TurboDiffusion's q' = phi(q).bf16) for both the numerator and den.
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int d = ks * 16 + 2 * t4 + (e & 1) + (e / 2) * 8;
          den[r] += __bfloat162float(__float2bfloat16(__expf(qv(r, d) - mx[r]) * sm[r])) * zs[d];
        }
      den[r] = quad_sum(den[r]) + 1e-5f;
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[n][e] *= den[e / 2];
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
      const int d0 = ks * 16 + 2 * t4;
      auto ph = [&](int r, int d) { return __expf(qv(r, d) - mx[r]) * sm[r]; };
      uint32_t pa[4] = {pack_bf16(ph(0, d0), ph(0, d0 + 1)), pack_bf16(ph(1, d0), ph(1, d0 + 1)),
                        pack_bf16(ph(0, d0 + 8), ph(0, d0 + 9)), pack_bf16(ph(1, d0 + 8), ph(1, d0 + 9))};
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        uint32_t b[4];
        ldmatrix_x4(b, epi + Swz<D * 2>::offset(np * 16 + (lane / 16) * 8 + lane % 8, ks * 2 + (lane / 8) % 2));
        mma_bf16(o[2 * np], pa, b[0], b[1]);
        mma_bf16(o[2 * np + 1], pa, b[2], b[3]);
      }
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[n][e] = o[n][e] / den[e / 2] + bs[n * 8 + 2 * t4 + (e & 1)];
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int t = q0 + warp * 16 + g + 8 * r;
    if (t >= a.L) continue;
    __nv_bfloat16* orow = a.o + (int64_t(t) * a.H + h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
      *reinterpret_cast<__nv_bfloat162*>(orow + n * 8 + 2 * t4) = __floats2bfloat162_rn(o[n][2 * r], o[n][2 * r + 1]);
  }
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
