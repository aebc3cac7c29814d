// The SLA linear branch's k/v pass on sm_90a, head_dim 128: KV = sum_L phi(k)^T v, z = sum_L phi(k), and the
// statistics sum_L k and amax_L |v| in one read of k and v, as linear_kv_kernel (sla_attention.cu) computes them.
//
// Why a second kernel: linear_kv_kernel runs phi and its mma.sync product one after the other in every warp, with two
// CTA barriers per tile; at 128 registers (64 of them KV accumulators) and two CTAs per SM it stays latency-bound
// (Nsight Compute, session 13: 45% of DRAM bandwidth, short-scoreboard and wait stalls). Here the product is
// asynchronous: each warpgroup issues the wgmmas of tile t (phi^T as A, v as B, both MN-major from shared memory:
// the tiles stay token-major, as they arrive) and goes on to turn tile t + 1 into phi while they run; ldmatrix and
// mma.sync leave the instruction stream. Numerics are the same: bf16 phi and v, fp32 accumulation.
#include "cuda/sla_linear_kv_sm90.h"

#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "cuda/cuda_common.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_linear_kv.cuh"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_wgmma.cuh"

namespace td {
namespace cuda {

namespace {

using bf16 = __nv_bfloat16;

constexpr int D = 128, T = sla_cfg::kLinearTile, kStages = sla_cfg::kLinearSm90Stages;
constexpr int kThreads = 256;                // two warpgroups: KV rows d1 0-63 and 64-127
constexpr int kCh = D / 8;                   // 16-byte chunks per token row = threads per row in the phi pass
constexpr int kRowsPerPass = kThreads / kCh;
constexpr int kHalfBytes = T * 128;          // one 64-channel half of a tile: T token rows of 128 bytes
constexpr int kTileBytes = 2 * kHalfBytes;   // all 128 channels
constexpr int kStageBytes = 2 * kTileBytes;  // k (turned into phi in place), v
constexpr int kSmem = kStages * kStageBytes + 1024;  // + room to align the base to 1024 bytes
static_assert(T % 16 == 0 && T % kRowsPerPass == 0, "tile layout");

// Byte offset of chunk ch (channels ch * 8 .. + 7) of token row r in a tile: the MN-major 128-byte-swizzle layout of
// wgmma_desc_sw128_mn, channel half ch / 8, 16-byte chunk ch % 8 stored at (ch % 8) ^ (r % 8).
__device__ __forceinline__ uint32_t tile_offset(int r, int ch) {
  return uint32_t((ch >> 3) * kHalfBytes + r * 128 + (((ch & 7) ^ (r & 7)) << 4));
}

__global__ void __launch_bounds__(kThreads, 2)
    linear_kv_sm90_kernel(const bf16* __restrict__ k, const bf16* __restrict__ v, int L, int H, int chunk,
                          float* __restrict__ kv, float* __restrict__ z, float* __restrict__ ksum,
                          float* __restrict__ vmax) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t lkv_smem[];
  __shared__ float red_s[3][D];  // end-of-CTA sums of the per-thread column partials (z, ksum, vmax)
  const uint32_t raw = sla::smem_u32(lkv_smem), base = (raw + 1023u) & ~1023u;
  uint8_t* const tiles = lkv_smem + (base - raw);
  const int tid = threadIdx.x, h = blockIdx.y;
  const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0);  // warp-uniform: the descriptors stay in uniform registers
  const int warp = (tid >> 5) & 3, lane = tid & 31;
  const int tb = blockIdx.x * chunk, te = min(L, tb + chunk);
  const int ntiles = te > tb ? (te - tb + T - 1) / T : 0;
  const int rsub = tid / kCh, q = tid % kCh;  // row within a pass, chunk within the row
  float acc[64];  // first written by tile 0's first wgmma (scale-d 0): clearing it here made ptxas serialize (C7515)
  sla::KvColumnSums cs;
  cs.clear();
  for (int i = tid; i < 3 * D; i += kThreads) (&red_s[0][0])[i] = 0.f;
  auto issue = [&](int t0, int stage) {
    uint8_t* const st = tiles + stage * kStageBytes;
    for (int idx = tid; idx < T * kCh; idx += kThreads) {
      const int r = idx / kCh, ch = idx % kCh, t = t0 + r;
      const int64_t off = (int64_t(t < te ? t : te - 1) * H + h) * D + ch * 8;
      const int n = t < te ? 16 : 0;  // rows past the chunk are zero-filled
      const uint32_t o = tile_offset(r, ch);
      sla::cp_async16(st + o, k + off, n);
      sla::cp_async16(st + kTileBytes + o, v + off, n);
    }
  };
  // Tiles t and t + 1 are always in flight when tile t is waited for (empty groups past the end keep the count).
  if (ntiles > 0) issue(tb, 0);
  sla::cp_async_commit();
  if (ntiles > 1) issue(tb + T, 1);
  sla::cp_async_commit();
  for (int it = 0; it < ntiles; it++) {
    const int stage = it % kStages, t0 = tb + it * T;
    sla::cp_async_wait<1>();
    __syncthreads();  // tile it has landed for every thread's copies
    uint8_t* const st = tiles + stage * kStageBytes;
#pragma unroll
    for (int pass = 0; pass < T / kRowsPerPass; pass++) {
      const int r = pass * kRowsPerPass + rsub;
      const uint32_t o = tile_offset(r, q);
      const uint4 kw = *reinterpret_cast<const uint4*>(st + o);
      const uint4 vw = *reinterpret_cast<const uint4*>(st + kTileBytes + o);
      *reinterpret_cast<uint4*>(st + o) = sla::phi_chunk<kCh>(kw, vw, t0 + r < te, cs);
    }
    sla::fence_proxy_async_smem();  // phi (and the cp.async data) become visible to the wgmma's async proxy
    sla::wgmma_wait0();             // this warpgroup's MMAs of tile it - 1 have read their stage ...
    __syncthreads();                // ... and the other's: stage (it - 1) % kStages is free, phi(it) complete
    if (it + 2 < ntiles) issue(t0 + 2 * T, (it + 2) % kStages);
    sla::cp_async_commit();
    const uint32_t sa = base + stage * kStageBytes;
    sla::fence_operands(acc);
    sla::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < T / 16; kk++)  // 16 tokens = two 8-row atoms = 2048 bytes
      sla::wgmma_m64n128k16_bf16_tt(acc, sla::wgmma_desc_sw128_mn(sa + wg * kHalfBytes + kk * 2048, kHalfBytes),
                                    sla::wgmma_desc_sw128_mn(sa + kTileBytes + kk * 2048, kHalfBytes), it + kk);
    sla::wgmma_commit();
  }
  sla::wgmma_wait0();
  sla::fence_operands(acc);
  sla::flush_column_sums<D, kThreads>(cs, q, h, red_s, z, ksum, vmax);
  // The partial KV tile: rows d1 = wg * 64 + warp * 16 + g (+ 8), columns d2 = 8 j + 2 t (+ 1), one 8-byte vector
  // atomic per pair (see linear_kv_kernel).
  if (ntiles == 0) return;  // (the grid gives every CTA a token; acc holds nothing otherwise)
  const int g = lane / 4, t4 = lane % 4, r = wg * 64 + warp * 16 + g;
  float* out = kv + int64_t(h) * D * D;
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const int c = j * 8 + 2 * t4;
    sla::atomic_add2(out + r * D + c, acc[4 * j], acc[4 * j + 1]);
    sla::atomic_add2(out + (r + 8) * D + c, acc[4 * j + 2], acc[4 * j + 3]);
  }
#else
  __trap();  // never launched: the host checks linear_kv_sm90_fits()
#endif
}

}  // namespace

bool linear_kv_sm90_fits(int head_dim, bool forced) {
  static const bool on = [] {
    const char* e = std::getenv("TD_SLA_LINEAR_WGMMA");
    return !(e && e[0] == '0');
  }();
  return (on || forced) && head_dim == D && cc() == 90;
}

void launch_linear_kv_sm90(const bf16* k, const bf16* v, int L, int H, int chunk, float* kv, float* z, float* ksum,
                           float* vmax, cudaStream_t stream) {
  TD_CHECK(chunk % T == 0 && chunk > 0, "sla linear_kv", "chunk must be a positive multiple of ", T, ", got ", chunk);
  TD_CUDA_CHECK(cudaFuncSetAttribute(linear_kv_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid((L + chunk - 1) / chunk, H);
  linear_kv_sm90_kernel<<<grid, kThreads, kSmem, stream>>>(k, v, L, H, chunk, kv, z, ksum, vmax);
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace td
