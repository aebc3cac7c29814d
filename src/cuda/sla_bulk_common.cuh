// Pieces shared by the two bulk-copy SageSLA kernels for sm_90a (sla_sparse_pipelined.cu, sla_sparse_compact.cu):
// the prologue's staging of the table row and the head's parameters, the ones tile of the row-sum wgmma, and the
// softmax of one 64 x 128 key block from its int32 scores. Internal to src/cuda/sla_*.cu.
#pragma once

#include <climits>
#include <cstdint>

#include "cuda/cuda_common.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_sparse.cuh"
#include "cuda/sla_sparse_common.cuh"
#include "cuda/sla_wgmma.cuh"

namespace td {
namespace cuda {
namespace sla {

// Copies the first kSelCache entries of the CTA's table row (sel, kc entries) and their K scales to sel_s / ksc_s,
// and the head's V scales (vmax / 448: l sums 448 p, so P's 1/448 is in 1/l), z and proj_l bias (zeros without the
// linear branch) to vsc / z / bias. The caller's barrier publishes them.
template <int D, int kThreads>
__device__ __forceinline__ void stage_row_and_head(const SparseArgs& a, int h, const int32_t* sel, int* sel_s,
                                                   float* ksc_s, float* vsc, float* z, float* bias) {
  const int tid = threadIdx.x;
  const int ncache = min(a.kc, sla_cfg::kSelCache);
  for (int i = tid; i < ncache; i += kThreads) {
    const int j = sel[i];
    sel_s[i] = j;
    ksc_s[i] = a.kscale[int64_t(h) * a.nk + j];
  }
  const bool linear = a.kvwt != nullptr;
  for (int d = tid; d < D; d += kThreads) {
    const float vm = a.vmax[int64_t(h) * D + d];
    vsc[d] = vm > 0.f ? vm / sla_cfg::kFp8Max : 1.f;
    z[d] = linear ? a.z[int64_t(h) * D + d] : 0.f;
    bias[d] = linear && a.bias ? a.bias[d] : 0.f;
  }
}

// 1 KiB of e4m3 ones (0x38), the B operand of the wgmma that sums P's rows, made visible to the async proxy.
template <int kThreads>
__device__ __forceinline__ void fill_ones_tile(uint8_t* ones) {
  for (int i = threadIdx.x; i < 64; i += kThreads)
    reinterpret_cast<uint4*>(ones)[i] = make_uint4(0x38383838u, 0x38383838u, 0x38383838u, 0x38383838u);
  fence_proxy_async_smem();
}

// The end of the prologue: the ones tile, then (once the caller's cp.async Q tile has landed) the per-tile int8
// quantization of Q into qi. Returns the scores' scale to base 2 (q scale x softmax scale x log2 e); the caller
// multiplies in each key block's K scale.
template <int BQ, int D, int kThreads>
__device__ __forceinline__ float finish_q_prologue(const SparseArgs& a, const uint8_t* qs, uint8_t* qi,
                                                   uint8_t* ones, float* red) {
  fill_ones_tile<kThreads>(ones);
  cp_async_wait<0>();
  __syncthreads();
  return quantize_q_tile<BQ, D, kThreads>(qs, qi, red) * a.scale_log2;
}

// Host side: checks that the kernel's dynamic (smem) plus static shared memory fits this GPU and allows it.
template <typename Kernel>
void allow_bulk_kernel_smem(Kernel kern, int smem, const char* what) {
  cudaFuncAttributes fa;
  TD_CUDA_CHECK(cudaFuncGetAttributes(&fa, kern));
  TD_CHECK(size_t(smem) + fa.sharedSizeBytes <= device_props().sharedMemPerBlockOptin, "sla", "the ", what,
           " sparse kernel needs ", smem, " + ", fa.sharedSizeBytes, " bytes of shared memory; this GPU allows ",
           device_props().sharedMemPerBlockOptin);
  TD_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
}

// The softmax of one key block straight from its int32 scores acc (m64n128 fragment layout: 16 n8 tiles, this
// thread's keys kbase + 8n + 2t4 + {0, 1} of rows g and g + 8), in base 2 with P scaled by 448 for e4m3 (see
// sla_sparse.cu for the derivation). row_max updates the running maxima m_r and returns o's rescale factor alpha
// and the FFMA bias; p16 then gives the 16 P values of k32 step kk in register order e + 4 (n - 4kk). Keys past L
// are masked only in the kPartial instance (the last key block): as a run-time condition inside one body the
// compiler if-converted the masking into ~5 predicated instructions per score for every block.
template <bool kPartial>
__device__ __forceinline__ void block_row_max(const int (&acc)[64], int kbase, int L, int t4, float f,
                                              float (&m_r)[2], float (&alpha)[2], float (&bias)[2]) {
  int mi[2] = {INT_MIN, INT_MIN};
  if constexpr (kPartial) {
#pragma unroll
    for (int n = 0; n < 16; n++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        if (kbase + n * 8 + 2 * t4 + (e & 1) < L) mi[e / 2] = max(mi[e / 2], acc[4 * n + e]);
  } else {
    // Two chains per row (even and odd n-tiles) halve the dependent VIMNMX3 depth at the head of the softmax.
    int mj[2] = {INT_MIN, INT_MIN};
#pragma unroll
    for (int n = 0; n < 16; n += 2) {
      mi[0] = __vimax3_s32(mi[0], acc[4 * n], acc[4 * n + 1]);
      mi[1] = __vimax3_s32(mi[1], acc[4 * n + 2], acc[4 * n + 3]);
      mj[0] = __vimax3_s32(mj[0], acc[4 * n + 4], acc[4 * n + 5]);
      mj[1] = __vimax3_s32(mj[1], acc[4 * n + 6], acc[4 * n + 7]);
    }
    mi[0] = max(mi[0], mj[0]);
    mi[1] = max(mi[1], mj[1]);
  }
  int_softmax_update(mi, f, m_r, alpha, bias);
}

template <bool kPartial>
__device__ __forceinline__ void block_p16(const int (&acc)[64], int kk, int kbase, int L, int t4, float f,
                                          const float (&bias)[2], float (&p)[16]) {
#pragma unroll
  for (int i = 0; i < 16; i++) {
    const int idx = 16 * kk + i, e = i & 3;
    p[i] = ex2_ftz(fmaf(__uint_as_float(uint32_t(acc[idx]) + 0x4B400000u), f, -bias[e / 2]));
    if (kPartial && kbase + (idx / 4) * 8 + 2 * t4 + (e & 1) >= L) p[i] = 0.f;
  }
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
