// The epilogue of the sm_90a SageSLA sparse kernels (sla_sparse_pipelined.cu, sla_sparse_compact.cu): the sparse
// branch's normalisation, the fused linear branch on the tensor cores, and the output rows (bf16, or int8 for the
// o-projection). Internal to src/cuda/sla_*.cu.
#pragma once

#include <cuda_bf16.h>
#include <cmath>
#include <cstdint>

#include "cuda/act_int8.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_sparse.cuh"
#include "cuda/sla_wgmma.cuh"

namespace td {
namespace cuda {
namespace sla {

// o = O_s / l * vscale (+ (phi(q) · KVW) / den + b), then the tile's rows leave through `stage`.
// - o, l_r: the CTA's accumulators (one warpgroup, this thread owns rows warp*16 + g and + 8, m64n128 layout).
// - qs: the bf16 Q tile (rows of 2D bytes, Swz<2D>), read for phi(q).
// - kvw: the shared address of the folded KVW^T tile as two 64-wide K-major halves of D * 128 bytes (128-byte
//   swizzle), half 1 right after half 0. wait_kvw(half) returns once that half has landed (a kernel may fill the
//   halves at different times); both are waited for after phi(q) is built.
// - stage: BQ * D * 2 bytes that nothing reads or writes once every warp has passed the barrier at its start (it
//   may alias qs).
// - vsc, z, bias: V's per-channel scale, the linear branch's z = sum_L phi(k) and proj_l's bias (zeros without it).
template <int BQ, int D, int kThreads, typename WaitKvw>
__device__ __forceinline__ void wgmma_sparse_epilogue(const SparseArgs& a, float (&o)[D / 8][4], const float (&l_r)[2],
                                                      const uint8_t* qs, uint32_t kvw, WaitKvw&& wait_kvw,
                                                      uint8_t* stage, const float* vsc, const float* z,
                                                      const float* bias, int q0, int h) {
  static_assert(D == 128, "one 128-channel int8 group per (token, head); KVW as two 64-wide halves");
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  float inv_l[2] = {1.f / l_r[0], 1.f / l_r[1]};
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) o[n][e] *= inv_l[e / 2] * vsc[n * 8 + 2 * t4 + (e & 1)];
  if (a.kvwt != nullptr) {
    // phi(q) = softmax of each row over the head dim, built in registers from the bf16 Q tile: this thread holds
    // dims 16ks + 2t4 + {0, 1, 8, 9} of rows g and g + 8 of its warp's 16, i.e. exactly the A fragments of the
    // m64n128k16 wgmma below. phi is rounded to bf16 (TurboDiffusion's q' = phi(q).bf16) for both the product and
    // den = 1e-5 + phi(q)·z.
    constexpr float kLog2e = 1.4426950408889634f;
    uint32_t pa[D / 16][4];
    float den[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const uint8_t* qrow = qs + (warp * 16 + g + 8 * r) * (D * 2) + 4 * t4;
      float x[D / 16][4];
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {  // Swz<2D>: chunk c of row r at c ^ (r & 7); here r & 7 = g
          const uint32_t w = *reinterpret_cast<const uint32_t*>(qrow + (((2 * ks + hf) ^ g) << 4));
          const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w));
          x[ks][2 * hf] = f.x;
          x[ks][2 * hf + 1] = f.y;
        }
      float mx = -INFINITY;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int e = 0; e < 4; e++) mx = fmaxf(mx, x[ks][e]);
      mx = quad_max(mx) * kLog2e;
      float sum = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          x[ks][e] = ex2_ftz(fmaf(x[ks][e], kLog2e, -mx));
          sum += x[ks][e];
        }
      const float inv = 1.f / quad_sum(sum);
      float dn = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
          const __nv_bfloat162 b2 = __floats2bfloat162_rn(x[ks][2 * hf] * inv, x[ks][2 * hf + 1] * inv);
          const float2 f = __bfloat1622float2(b2);
          const int d = 16 * ks + 8 * hf + 2 * t4;
          dn = fmaf(f.x, z[d], fmaf(f.y, z[d + 1], dn));
          pa[ks][r + 2 * hf] = *reinterpret_cast<const uint32_t*>(&b2);
        }
      den[r] = quad_sum(dn) + 1e-5f;
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[n][e] *= den[e / 2];
    // o·den += phi(q) KVW on the tensor cores.
    float(&of)[D / 2] = reinterpret_cast<float(&)[D / 2]>(o);
    const uint64_t dw = wgmma_desc_sw128(kvw);
    wait_kvw(0);
    wait_kvw(1);  // both before the first wgmma: a wait loop between two wgmma would serialize them
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
      wgmma_m64n128k16_bf16_rs(of, pa[ks], dw + uint64_t((ks / 4) * (D * 128 >> 4) + (ks % 4) * 2));
    wgmma_commit();
    wgmma_wait0();
    fence_operands(of);
    const float inv_den[2] = {1.f / den[0], 1.f / den[1]};
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[n][e] = fmaf(o[n][e], inv_den[e / 2], bias[n * 8 + 2 * t4 + (e & 1)]);
  }
  // Output through shared memory, so each row leaves as 16-byte stores: bf16 rows, or (a.oq) the W8A8 activation
  // quantization of the row: one 128-channel group per (token, head), quantized from the fp32 values as
  // quantize_act_int8 does (scale amax / 128, round to nearest even, saturate), which spares the o-projection a
  // separate pass over the output.
  __syncthreads();
  const bool quant = a.oq != nullptr;
  constexpr int kRowBytesBf16 = D * 2, kRowBytesI8 = D;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int row = warp * 16 + g + 8 * r;
    // 16-byte chunk c of a staged row sits at c ^ (row & 7): the 8 rows of one store phase hit different banks.
    if (quant) {
      float amax = 0.f;
#pragma unroll
      for (int n = 0; n < D / 8; n++) amax = fmaxf(amax, fmaxf(fabsf(o[n][2 * r]), fabsf(o[n][2 * r + 1])));
      amax = fmaxf(quad_max(amax), 1e-8f);
      const float inv = act_int8_inv(amax);
      uint8_t* srow = stage + row * kRowBytesI8;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        *reinterpret_cast<uint16_t*>(srow + (((n / 2) ^ (row & 7)) << 4) + (n % 2) * 8 + 2 * t4) =
            act_int8_pack2(o[n][2 * r], o[n][2 * r + 1], inv);
      }
      const int tok = q0 + row;
      if (t4 == 0 && tok < a.L) a.oscale[int64_t(tok) * a.H + h] = act_int8_scale(amax);
    } else {
      uint8_t* srow = stage + row * kRowBytesBf16;
#pragma unroll
      for (int n = 0; n < D / 8; n++)
        *reinterpret_cast<__nv_bfloat162*>(srow + ((n ^ (row & 7)) << 4) + 4 * t4) =
            __floats2bfloat162_rn(o[n][2 * r], o[n][2 * r + 1]);
    }
  }
  __syncthreads();
  const int row_bytes = quant ? kRowBytesI8 : kRowBytesBf16, chunks = row_bytes / 16;
  uint8_t* out = quant ? reinterpret_cast<uint8_t*>(a.oq) : reinterpret_cast<uint8_t*>(a.o);
  for (int idx = tid; idx < BQ * chunks; idx += kThreads) {
    const int row = idx / chunks, c = idx % chunks, tok = q0 + row;
    if (tok >= a.L) continue;
    const uint4 val = *reinterpret_cast<const uint4*>(stage + row * row_bytes + ((c ^ (row & 7)) << 4));
    *reinterpret_cast<uint4*>(out + (int64_t(tok) * a.H + h) * row_bytes + c * 16) = val;
  }
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
