// SLA / SageSLA on CUDA: the passes that prepare the sparse kernel's operands, and the orchestration.
//
//  1. stats      : sum_L k (-> mean for smooth-K) and, for SageSLA, amax_L |v| per (head, channel). One read of k, v.
//  2. pool       : mean-pooled q per query block; mean-pooled k - mean per key block (SLA; SageSLA does it in 3).
//  3. kquant     : (SageSLA) per key block: pooled k - mean, int8 k - mean with one scale per block, head-major.
//     vquant     : (SageSLA) per key block: e4m3 v / (amax/448), transposed to [H, Dh, L] and permuted per 16 tokens.
//  4. score      : S = Pq Pk^T per head (a small tiled fp32 GEMM) -> [H, nq, nk].
//  5. topk       : per (head, query block) a radix select of the kc-th score (ties: lower index); the kept indices
//                  are written ascending to the block table [H, nq, kc].
//  6. linear kv  : KV = sum_L phi(k)^T v [H, Dh, Dh] and z = sum_L phi(k) [H, Dh] in one pass (bf16 mma, fp32 sums).
//  7. fold       : KVW^T = (KV W^T)^T per head as bf16, so proj_l costs nothing per token.
//  8. sparse     : sla_sparse.cu (block-sparse attention + linear-branch epilogue).
#include "cuda/sla_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cpu/sla_attention.h"
#include "cuda/cuda_common.cuh"
#include "cuda/int8_round.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_linear_kv.cuh"
#include "cuda/sla_linear_kv_sm90.h"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_sparse.cuh"

namespace td {
namespace cuda {

namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, s));
  return x;
}

// ---- 1. stats ----
template <bool VMAX>
__global__ void stats_kernel(const bf16* __restrict__ k, const bf16* __restrict__ v, int L, int C, int tokens,
                             float* __restrict__ ksum, float* __restrict__ vmax) {
  const int t0 = blockIdx.x * tokens, t1 = min(L, t0 + tokens);
  for (int c = 2 * threadIdx.x; c < C; c += 2 * blockDim.x) {
    float s0 = 0.f, s1 = 0.f, m0 = 0.f, m1 = 0.f;
    for (int t = t0; t < t1; t++) {
      const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(k + int64_t(t) * C + c));
      s0 += x.x;
      s1 += x.y;
      if (VMAX) {
        const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(v + int64_t(t) * C + c));
        m0 = fmaxf(m0, fabsf(y.x));
        m1 = fmaxf(m1, fabsf(y.y));
      }
    }
    atomicAdd(ksum + c, s0);
    atomicAdd(ksum + c + 1, s1);
    if (VMAX) {  // non-negative floats order like their bit patterns
      atomicMax(reinterpret_cast<int*>(vmax) + c, __float_as_int(m0));
      atomicMax(reinterpret_cast<int*>(vmax) + c + 1, __float_as_int(m1));
    }
  }
}

// The column totals of a 256-thread CTA in which thread tid holds partial sums s[8] of channels q * 8 .. q * 8 + 7,
// q = tid % (D / 8): lanes of one warp with the same q (they differ in the bits above log2(D / 8)) meet through
// shuffles, the 8 warps through part. Returns channel tid's total in threads tid < D, 0 elsewhere. Ends with a
// barrier after part is written, so it also publishes the caller's other shared-memory writes.
template <int D>
__device__ __forceinline__ float cta_column_sum(float (&s)[8], float (*part)[D]) {
  constexpr int kCh = D / 8;
  static_assert(32 % kCh == 0, "the chunks of one row in one warp");
  const int tid = threadIdx.x, q = tid % kCh;
#pragma unroll
  for (int e = 0; e < 8; e++)
#pragma unroll
    for (int o = kCh; o < 32; o <<= 1) s[e] += __shfl_xor_sync(0xffffffffu, s[e], o);
  if (tid % 32 < kCh)
#pragma unroll
    for (int e = 0; e < 8; e++) part[tid / 32][q * 8 + e] = s[e];
  __syncthreads();
  float t = 0.f;
  if (tid < D)
#pragma unroll
    for (int w8 = 0; w8 < 8; w8++) t += part[w8][tid];
  return t;
}

// ---- 2. pool (256 threads per block of b <= kPoolMaxBlock tokens) ----
// One thread per 16-byte chunk of a token row, every load of the block issued before the first add (the previous
// kernel, one thread per channel walking the b tokens, kept a 2-byte load or two in flight per thread: 0.318 ms for
// q at 75,600 x 40, 2.4 TB/s); the token lanes then meet through shuffles and shared memory.
constexpr int kPoolMaxBlock = 128;
template <int D>
__global__ void __launch_bounds__(256) pool_kernel(const bf16* __restrict__ x, int L, int H, int b, int n,
                                                   const float* __restrict__ sum_for_mean, float* __restrict__ out) {
  constexpr int kCh = D / 8, kRows = 256 / kCh;  // 16-byte chunks per row, token rows per pass
  __shared__ float part[8][D];
  const int j = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, rsub = tid / kCh, q = tid % kCh;
  const int t0 = j * b, t1 = min(L, t0 + b);
  uint4 w[kPoolMaxBlock / kRows];
#pragma unroll
  for (int p = 0; p < kPoolMaxBlock / kRows; p++) {
    const int t = t0 + p * kRows + rsub;
    w[p] = t < t1 ? __ldg(reinterpret_cast<const uint4*>(x + (int64_t(t) * H + h) * D + q * 8))
                  : make_uint4(0u, 0u, 0u, 0u);  // bf16 zeros
  }
  float s[8] = {};
#pragma unroll
  for (int p = 0; p < kPoolMaxBlock / kRows; p++) {
    const __nv_bfloat162* v2 = reinterpret_cast<const __nv_bfloat162*>(&w[p]);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const float2 f = __bfloat1622float2(v2[e]);
      s[2 * e] += f.x;
      s[2 * e + 1] += f.y;
    }
  }
  const float sum = cta_column_sum<D>(s, part);
  if (tid < D) {
    const float mean = sum_for_mean ? sum_for_mean[h * D + tid] / float(L) : 0.f;
    out[(int64_t(h) * n + j) * D + tid] = sum / float(t1 - t0) - mean;
  }
}

// Launches the pooling of x [L, H, D] over blocks of b tokens into out [H, n, D] (minus sum_for_mean / L if given).
void launch_pool(const bf16* x, int L, int H, int D, int b, int n, const float* sum_for_mean, float* out,
                 cudaStream_t st) {
  TD_CHECK(b >= 1 && b <= kPoolMaxBlock, "sla", "block sizes up to ", kPoolMaxBlock, " tokens are pooled, got ", b);
  if (D == 64)
    pool_kernel<64><<<dim3(n, H), 256, 0, st>>>(x, L, H, b, n, sum_for_mean, out);
  else
    pool_kernel<128><<<dim3(n, H), 256, 0, st>>>(x, L, H, b, n, sum_for_mean, out);
  TD_CUDA_LAUNCH_CHECK();
}

// ---- 3. kquant (256 threads per key block): pooled k - mean, int8 k - mean per block ----
// Register tiles: thread (q, rg) holds the 16-byte chunk q (8 channels) of rows rg, rg + R, ... (R = 256 / (D / 8)
// row groups), all loaded before the first use; the column sums meet through shuffles and shared memory, and the
// rows are quantized from the same registers. The previous kernel staged the block in shared memory and read it
// back with 2-byte loads (one per value for the column pass, 16 per quantized chunk): Nsight Compute at 75,600 x 40
// had it waiting on the shared-memory pipe (MIO throttle 6.4, barrier 3.1 cycles per instruction) at 59% of DRAM
// bandwidth.
// TILED (the sm_90 bulk-copy kernels' layout, D = 128): each 128-byte row is stored with its 16-byte chunks
// already in wgmma's 128-byte-swizzle order (chunk c at c ^ (row & 7)), so one linear bulk copy of a key block is the
// shared-memory image the kernel multiplies from.
template <int BK, int D, bool TILED = false>
__global__ void __launch_bounds__(256) kquant_kernel(const bf16* __restrict__ k, int L, int H, int nk,
                                                     const float* __restrict__ ksum, float* __restrict__ pk,
                                                     int8_t* __restrict__ kq, float* __restrict__ kscale) {
  constexpr int NT = 256, kCh = D / 8, kGroups = NT / kCh, kRows = BK / kGroups;
  static_assert(BK % kGroups == 0 && 32 % kCh == 0, "whole rows per thread, chunks of one row in one warp");
  static_assert(!TILED || D == 128, "the tiled layout has 128-byte rows");
  __shared__ float part[NT / 32][D];  // per-warp column sums
  __shared__ float red[NT / 32];
  const int j = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid % 32, q = tid % kCh, rg = tid / kCh;
  const int t0 = j * BK, n = min(L, t0 + BK) - t0;
  uint4 w[kRows];
#pragma unroll
  for (int i = 0; i < kRows; i++) {
    const int r = rg + i * kGroups;
    w[i] = r < n ? __ldg(reinterpret_cast<const uint4*>(k + (int64_t(t0 + r) * H + h) * D + q * 8))
                 : make_uint4(0u, 0u, 0u, 0u);
  }
  float mean[8];
#pragma unroll
  for (int e = 0; e < 8; e++) mean[e] = ksum[h * D + q * 8 + e] / float(L);
  auto value = [&](int i, int e) {  // k - mean of row i's channel q * 8 + e
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(&w[i])[e]) - mean[e];
  };
  float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, mx = 0.f;
#pragma unroll
  for (int i = 0; i < kRows; i++)
    if (rg + i * kGroups < n)
#pragma unroll
      for (int e = 0; e < 8; e++) {
        const float x = value(i, e);
        s[e] += x;
        mx = fmaxf(mx, fabsf(x));
      }
  mx = warp_max(mx);
  if (lane == 0) red[tid / 32] = mx;
  const float colsum = cta_column_sum<D>(s, part);  // its barrier also publishes red
  if (tid < D) pk[(int64_t(h) * nk + j) * D + tid] = colsum / float(n);
  mx = red[0];
#pragma unroll
  for (int w8 = 1; w8 < NT / 32; w8++) mx = fmaxf(mx, red[w8]);
  const float sc = mx / 127.f + 1e-7f;
  if (tid == 0) kscale[int64_t(h) * nk + j] = sc;
  // x * (1 / sc) rather than x / sc (an IEEE division is a ~10-instruction sequence): the two differ by at most an
  // ulp before rounding, i.e. only for values within an ulp of a rounding boundary.
  const float inv_sc = 1.f / sc;
  int8_t* dst = kq + (int64_t(h) * nk * BK + t0) * D;
#pragma unroll
  for (int i = 0; i < kRows; i++) {
    const int r = rg + i * kGroups;
    uint32_t o[2] = {0u, 0u};  // rows past L stay zero
    if (r < n) {
      uint32_t b[8];
#pragma unroll
      for (int e = 0; e < 8; e++) b[e] = int8_half_away_bits(value(i, e) * inv_sc);
      o[0] = pack_low_bytes(b[0], b[1], b[2], b[3]);
      o[1] = pack_low_bytes(b[4], b[5], b[6], b[7]);
    }
    const int col = TILED ? (((q / 2) ^ (r & 7)) * 16 + (q % 2) * 8) : q * 8;
    *reinterpret_cast<uint2*>(dst + int64_t(r) * D + col) = make_uint2(o[0], o[1]);
  }
}

// ---- 3b. vquant ((D/8) x (BK/16) threads): e4m3 V^T, tokens permuted per 16 (sla::v_perm) ----
// Thread (tg, q) loads the 16-byte chunk q (8 channels) of the 16 tokens of group tg into registers and writes, per
// channel, one 16-byte row chunk of V^T: a transpose in registers. The previous kernel staged the block in shared
// memory and gathered each output chunk with 16 two-byte loads (75,600 x 40: MIO throttle 13.7 and long scoreboard
// 16 cycles per instruction, 65% of DRAM bandwidth).
// TILED (the sm_90 bulk-copy kernels' layout, BK = 128): [H, nk, D, BK], one key block's V^T contiguous, its 16-byte
// chunks in wgmma's 128-byte-swizzle order (chunk c of channel row d at c ^ (d & 7)): one bulk copy per block.
template <int BK, int D>
constexpr int vquant_threads() {
  return (D / 8) * (BK / 16);
}
template <int BK, int D, bool TILED = false>
__global__ void __launch_bounds__(vquant_threads<BK, D>()) vquant_kernel(const bf16* __restrict__ v, int L, int H,
                                                                         int nk, const float* __restrict__ vmax,
                                                                         uint8_t* __restrict__ vt) {
  constexpr int kGroups = BK / 16;
  static_assert(!TILED || BK == 128, "the tiled layout has 128-token rows");
  // The token group varies fastest, so a warp's stores for one channel cover whole 128-byte V^T rows.
  const int j = blockIdx.x, h = blockIdx.y, tg = threadIdx.x % kGroups, q = threadIdx.x / kGroups;
  const int t0 = j * BK, tok0 = t0 + tg * 16;
  uint4 w[16];
#pragma unroll
  for (int e = 0; e < 16; e++)
    w[e] = tok0 + e < L ? __ldg(reinterpret_cast<const uint4*>(v + (int64_t(tok0 + e) * H + h) * D + q * 8))
                        : make_uint4(0u, 0u, 0u, 0u);  // zero past L
  const int64_t lpad = int64_t(nk) * BK;
#pragma unroll
  for (int c = 0; c < 8; c++) {
    const int d = q * 8 + c;
    const float vm = vmax[h * D + d];
    // A multiply by 1 / scale, not a division per value (see kquant): e4m3 keeps 3 mantissa bits, so the ulp of
    // difference before rounding almost never shows.
    const float inv_sc = vm > 0.f ? sla_cfg::kFp8Max / vm : 1.f;
    auto x = [&](int e) {
      return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(&w[sla::v_perm(e)])[c]) * inv_sc;
    };
    uint32_t o[4];
#pragma unroll
    for (int e = 0; e < 16; e += 4) {
      const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(x(e), x(e + 1)), __NV_SATFINITE, __NV_E4M3);
      const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(x(e + 2), x(e + 3)), __NV_SATFINITE, __NV_E4M3);
      o[e / 4] = lo | (hi << 16);
    }
    uint8_t* dst = TILED ? vt + ((int64_t(h) * nk + j) * D + d) * BK + ((tg ^ (d & 7)) * 16)
                         : vt + (int64_t(h) * D + d) * lpad + tok0;
    *reinterpret_cast<uint4*>(dst) = make_uint4(o[0], o[1], o[2], o[3]);
  }
}

// ---- 4. score: S[h][i][j] = sum_d Pq[h][i][d] Pk[h][j][d]; 64x64 tiles, 256 threads, 4x4 scores each ----
// D <= 128 is small, so a CTA loads its whole 64 x D slices of Pq and Pk once (16-byte loads, all in flight
// together; 68 KiB of shared memory, three CTAs per SM) and runs D steps of float4 reads + 16 FMA with no further
// barrier. The previous kernel (16-wide d slices, a load -> barrier -> compute round each) waited out one global
// latency per slice and read shared memory with scalar loads: 537 us at 75,600 x 40 under Nsight Compute.
// Each score is one fmaf chain over d = 0..D-1 in order, as before, so the scores are bit-identical (the top-k tie
// rule depends on exact values).
constexpr int kScoreTile = 64, kScorePitch = kScoreTile + 4;  // +4 floats: 16-byte aligned rows
template <int D>
__global__ void __launch_bounds__(256) score_kernel(const float* __restrict__ pq, const float* __restrict__ pk, int nq,
                                                    int nk, float* __restrict__ S) {
  extern __shared__ __align__(16) float score_smem[];
  float(*as)[kScorePitch] = reinterpret_cast<float(*)[kScorePitch]>(score_smem);  // [D][pitch]: as[d][i]
  float(*bs)[kScorePitch] = as + D;
  const int h = blockIdx.z, i0 = blockIdx.y * kScoreTile, j0 = blockIdx.x * kScoreTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* A = pq + int64_t(h) * nq * D;
  const float* B = pk + int64_t(h) * nk * D;
  // A warp reads 8 rows x 4 consecutive 16-byte chunks (whole 32-byte sectors, where one chunk of 32 rows per warp
  // used half of each), and its transposing stores then share banks 2-way.
  constexpr int kItems = kScoreTile * (D / 4);
  static_assert(kScoreTile * 4 == 256, "one pass of 256 threads covers 4 chunks of every row");
#pragma unroll
  for (int it = 0; it < kItems / 256; it++) {
    const int idx = int(threadIdx.x) + it * 256, r = (idx / 4) % kScoreTile, c4 = idx % 4 + 4 * it;
    const float4 a = i0 + r < nq ? *reinterpret_cast<const float4*>(A + int64_t(i0 + r) * D + 4 * c4)
                                 : make_float4(0.f, 0.f, 0.f, 0.f);
    const float4 b = j0 + r < nk ? *reinterpret_cast<const float4*>(B + int64_t(j0 + r) * D + 4 * c4)
                                 : make_float4(0.f, 0.f, 0.f, 0.f);
    as[4 * c4][r] = a.x;
    as[4 * c4 + 1][r] = a.y;
    as[4 * c4 + 2][r] = a.z;
    as[4 * c4 + 3][r] = a.w;
    bs[4 * c4][r] = b.x;
    bs[4 * c4 + 1][r] = b.y;
    bs[4 * c4 + 2][r] = b.z;
    bs[4 * c4 + 3][r] = b.w;
  }
  __syncthreads();
  float acc[4][4] = {};
#pragma unroll 8
  for (int d = 0; d < D; d++) {
    const float4 a = *reinterpret_cast<const float4*>(&as[d][ty * 4]);
    const float4 b = *reinterpret_cast<const float4*>(&bs[d][tx * 4]);
    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int w = 0; w < 4; w++) acc[u][w] = fmaf(av[u], bv[w], acc[u][w]);
  }
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const int i = i0 + ty * 4 + u;
    if (i >= nq) continue;
    float* srow = S + (int64_t(h) * nq + i) * nk;
#pragma unroll
    for (int w = 0; w < 4; w++) {
      const int j = j0 + tx * 4 + w;
      if (j < nk) srow[j] = acc[u][w];
    }
  }
}

// ---- 5. topk: radix select of the kc-th largest score, then one ordered pass that keeps the blocks above it ----
// A full sort of (score, index) keys (the previous kernel: a bitonic sort, log2(n)^2 / 2 barrier steps) is more
// than the block map needs: the table is the top-kc set in ascending block order. Four 8-bit histogram passes over
// the order-preserving score bits find the threshold T and how many blocks of score exactly T to keep; the final
// pass keeps score > T, and of the blocks at T the lowest indices (the same tie rule as the CPU reference).
__device__ __forceinline__ uint32_t ordered_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Warp-wide step of the radix select: lane l sums bins 255-8l down to 248-8l of hist (the candidates' counts per
// value of the current digit); the lane where the running count from the top digit reaches need walks its 8 bins.
// Returns true in that lane only, with the digit of the need-th largest candidate and how many candidates with that
// digit are still to take.
__device__ __forceinline__ bool radix_pick(const unsigned* hist, int lane, int need, int& digit, int& rest) {
  int cnt[8], tot = 0;
#pragma unroll
  for (int b = 0; b < 8; b++) tot += cnt[b] = int(hist[255 - 8 * lane - b]);
  int inc = tot;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  const int exc = inc - tot;
  if (!(exc < need && need <= inc)) return false;
  int above = exc, b = 0;
  while (above + cnt[b] < need) above += cnt[b++];
  digit = 255 - 8 * lane - b;
  rest = need - above;
  return true;
}

// Warp-wide: the ascending indices of the blocks kept from a row of nk ordered score bits, those above the
// threshold T and, of those equal to it, the first `need` (the CPU reference's tie rule), written to out.
__device__ __forceinline__ void write_kept_blocks(const uint32_t* bits, int nk, uint32_t T, int need, int lane,
                                                  int32_t* out) {
  int base = 0, eq_seen = 0;
  const unsigned below = (1u << lane) - 1u;
  for (int j0 = 0; j0 < nk; j0 += 32) {
    const int j = j0 + lane;
    const uint32_t u = j < nk ? bits[j] : 0u;
    const bool eq = j < nk && u == T;
    const unsigned meq = __ballot_sync(0xffffffffu, eq);
    const bool keep = (j < nk && u > T) || (eq && eq_seen + __popc(meq & below) < need);
    const unsigned m = __ballot_sync(0xffffffffu, keep);
    if (keep) out[base + __popc(m & below)] = j;
    base += __popc(m);
    eq_seen += __popc(meq);
  }
}

constexpr int kTopkThreads = 256;

__global__ void __launch_bounds__(kTopkThreads)
    topk_kernel(const float* __restrict__ S, int nq, int nk, int kc, int32_t* __restrict__ table) {
  extern __shared__ uint32_t bits[];  // nk ordered score bits
  __shared__ unsigned hist[256];
  __shared__ uint32_t s_prefix;
  __shared__ int s_need;
  const int i = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid % 32;
  const float* row = S + (int64_t(h) * nq + i) * nk;
  for (int j = tid; j < nk; j += kTopkThreads) bits[j] = ordered_bits(row[j]);
  uint32_t prefix = 0, mask = 0;
  int need = kc;  // blocks still to take among those whose bits match prefix on mask
  for (int shift = 24; shift >= 0; shift -= 8) {
    hist[tid] = 0;  // kTopkThreads == 256 bins
    __syncthreads();
    for (int j = tid; j < nk; j += kTopkThreads) {
      const uint32_t u = bits[j];
      if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid < 32) {
      int digit, rest;
      if (radix_pick(hist, lane, need, digit, rest)) {
        s_prefix = prefix | (uint32_t(digit) << shift);
        s_need = rest;
      }
    }
    __syncthreads();
    prefix = s_prefix;
    need = s_need;
    mask |= 255u << shift;
    __syncthreads();  // hist and s_* are rewritten by the next pass
  }
  // prefix = T; keep bits > T, and the first `need` blocks with bits == T.
  if (tid < 32) write_kept_blocks(bits, nk, prefix, need, lane, table + (int64_t(h) * nq + i) * kc);
}

// The same selection with one warp per (head, query block) row and eight rows per CTA: every barrier is a
// __syncwarp, where the CTA-per-row kernel above ran 17 block-wide barriers for a few hundred scores (75,600 x 40:
// 47,280 CTAs, 341 us under Nsight Compute). Used while eight rows of score bits fit in shared memory.
constexpr int kTopkRowsPerCta = 8, kTopkWarpMaxKeys = 2048;

__global__ void __launch_bounds__(kTopkRowsPerCta * 32)
    topk_warp_kernel(const float* __restrict__ S, int nq, int nk, int kc, int32_t* __restrict__ table) {
  extern __shared__ uint32_t topk_smem[];  // per warp: 256 histogram bins, then nk ordered score bits
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int i = blockIdx.x * kTopkRowsPerCta + warp, h = blockIdx.y;
  if (i >= nq) return;
  unsigned* hist = topk_smem + warp * (256 + nk);
  uint32_t* bits = hist + 256;
  const float* row = S + (int64_t(h) * nq + i) * nk;
  for (int j = lane; j < nk; j += 32) bits[j] = ordered_bits(row[j]);
  uint32_t prefix = 0, mask = 0;
  int need = kc;  // blocks still to take among those whose bits match prefix on mask
  for (int shift = 24; shift >= 0; shift -= 8) {
#pragma unroll
    for (int b = 0; b < 8; b++) hist[lane * 8 + b] = 0;
    __syncwarp();
    for (int j = lane; j < nk; j += 32) {
      const uint32_t u = bits[j];
      if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
    }
    __syncwarp();
    int digit = 0, rest = 0;
    const bool found = radix_pick(hist, lane, need, digit, rest);
    const int src = __ffs(__ballot_sync(0xffffffffu, found)) - 1;
    prefix |= uint32_t(__shfl_sync(0xffffffffu, digit, src)) << shift;
    need = __shfl_sync(0xffffffffu, rest, src);
    mask |= 255u << shift;
    __syncwarp();  // hist is cleared by the next pass
  }
  write_kept_blocks(bits, nk, prefix, need, lane, table + (int64_t(h) * nq + i) * kc);
}

// ---- 6. linear kv: per (token chunk, head), D/16 warps in a 2 x D/32 grid over the D x D KV tile ----
// Tiles of T tokens of k and v stream through a two-stage cp.async ring (dynamic smem: 2 stages x {k, v} x T x P
// bf16), so the next tile's HBM latency hides behind this tile's work (a third stage, still two CTAs per SM, was
// slower on the H100: 0.18-0.20 against 0.15-0.16 ms). phi(k) is computed in place over the k tile with one thread
// per 16-byte chunk of a token row (D / 8 threads per row, one 16-byte load of k and of v each), in place of one
// warp per row with two 5-step shuffle reductions per row. One chunk per thread keeps the kernel at
// <= 128 registers (two CTAs per SM); two chunks per thread needed 196.
// Each thread keeps the same columns of every row it touches, so z = sum_L phi(k) (from the bf16-rounded phi that the
// mma sees) and, with ksum non-null, sum_L k and (vmax non-null) amax_L |v| accumulate in registers; they replace the
// separate stats pass (1) when the linear branch runs.
template <int D>
__global__ void __launch_bounds__(D / 16 * 32, 2)
    linear_kv_kernel(const bf16* __restrict__ k, const bf16* __restrict__ v, int L, int H, int chunk,
                     float* __restrict__ kv, float* __restrict__ z, float* __restrict__ ksum,
                     float* __restrict__ vmax) {
  constexpr int T = sla_cfg::kLinearTile, NW = D / 16, NT = NW * 32, P = D + 8;  // P: padded pitch (ldmatrix)
  constexpr int kCh = D / 8;  // 16-byte chunks per row = threads per row
  constexpr int kRowsPerPass = NT / kCh;
  static_assert(T % kRowsPerPass == 0 && kCh <= 32 && 32 % kCh == 0, "row pass layout");
  extern __shared__ __align__(16) uint8_t lin_smem[];
  __shared__ float red_s[3][D];  // end-of-CTA sums of the per-thread column partials (z, ksum, vmax)
  auto tile = [&](int stage, int which) { return reinterpret_cast<bf16(*)[P]>(lin_smem) + (stage * 2 + which) * T; };
  const int h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int tb = blockIdx.x * chunk, te = min(L, tb + chunk);
  const int rsub = threadIdx.x / kCh, q = threadIdx.x % kCh;  // row within a pass, chunk within the row
  // KV tile of this warp: rows d1 in [wm * D / 2, +D / 2) and columns d2 in [wn * D / WN, +D / WN), a 2 x WN grid of
  // warps. A grid of 1 x NW (each warp 16 rows x all D columns) read the whole V tile from shared memory in every
  // warp; here each warp reads half of phi and 1 / WN of V, a third less shared-memory traffic at D = 128.
  constexpr int WN = NW / 2, MT = D / 2 / 16, NT8 = D / WN / 8;
  static_assert(NT8 % 2 == 0, "B fragments come in pairs of n8 tiles");
  const int wm = warp / WN, wn = warp % WN;
  float acc[MT][NT8][4];
#pragma unroll
  for (int m = 0; m < MT; m++)
#pragma unroll
    for (int n = 0; n < NT8; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
  sla::KvColumnSums cs;  // this thread's columns: chunk q, 8 values
  cs.clear();
  for (int i = threadIdx.x; i < 3 * D; i += NT) (&red_s[0][0])[i] = 0.f;
  auto issue = [&](int t0, int stage) {
    bf16(*kt)[P] = tile(stage, 0);
    bf16(*vt)[P] = tile(stage, 1);
    for (int idx = threadIdx.x; idx < T * kCh; idx += NT) {
      const int r = idx / kCh, ch = idx % kCh, t = t0 + r;
      const int64_t off = (int64_t(t < te ? t : te - 1) * H + h) * D + ch * 8;
      const int n = t < te ? 16 : 0;
      sla::cp_async16(&kt[r][ch * 8], k + off, n);
      sla::cp_async16(&vt[r][ch * 8], v + off, n);
    }
  };
  if (tb < te) issue(tb, 0);
  sla::cp_async_commit();
  int it = 0;
  for (int t0 = tb; t0 < te; t0 += T, it++) {
    const int stage = it & 1;
    if (t0 + T < te) issue(t0 + T, stage ^ 1);  // that stage was released by the last barrier of the previous tile
    sla::cp_async_commit();
    sla::cp_async_wait<1>();
    __syncthreads();
    bf16(*phs)[P] = tile(stage, 0);
    bf16(*vs)[P] = tile(stage, 1);
#pragma unroll
    for (int pass = 0; pass < T / kRowsPerPass; pass++) {
      const int r = pass * kRowsPerPass + rsub;
      const bool valid = t0 + r < te;  // rows past the chunk are zero-filled (k and v): phi must be zero there
      const uint4 kw = *reinterpret_cast<const uint4*>(&phs[r][q * 8]);
      const uint4 vw = *reinterpret_cast<const uint4*>(&vs[r][q * 8]);
      *reinterpret_cast<uint4*>(&phs[r][q * 8]) = sla::phi_chunk<kCh>(kw, vw, valid, cs);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < T / 16; kk++) {
      const int mi = lane / 8;
      uint32_t b[NT8 / 2][4];  // V (tokens x d2): this warp's NT8 n8 tiles
#pragma unroll
      for (int np = 0; np < NT8 / 2; np++)
        sla::ldmatrix_x4_trans(b[np], &vs[kk * 16 + (mi % 2) * 8 + lane % 8][wn * (D / WN) + np * 16 + (mi / 2) * 8]);
#pragma unroll
      for (int m = 0; m < MT; m++) {
        uint32_t a[4];  // A = phi^T (rows d1, cols tokens): transposed load of phs[tokens][d1]
        sla::ldmatrix_x4_trans(a, &phs[kk * 16 + (mi / 2) * 8 + lane % 8][wm * (D / 2) + m * 16 + (mi % 2) * 8]);
#pragma unroll
        for (int np = 0; np < NT8 / 2; np++) {
          sla::mma_bf16(acc[m][2 * np], a, b[np][0], b[np][1]);
          sla::mma_bf16(acc[m][2 * np + 1], a, b[np][2], b[np][3]);
        }
      }
    }
    __syncthreads();
  }
  sla::flush_column_sums<D, NT>(cs, q, h, red_s, z, ksum, vmax);
  // The partial KV tile, one 8-byte vector atomic per fragment row pair (c, c + 1): four scalar atomics per fragment
  // made every CTA's end a queue at the L2 atomic units (22 CTAs per head add into one 64 KiB tile at 32,760 x 12).
  // Staging the tile in shared memory for 16-byte atomics made ptxas spill the main loop (128 registers, 2 CTAs/SM).
  const int g = lane / 4, t4 = lane % 4;
  float* out = kv + int64_t(h) * D * D;
#pragma unroll
  for (int m = 0; m < MT; m++)
#pragma unroll
    for (int n = 0; n < NT8; n++) {
      const int c = wn * (D / WN) + n * 8 + 2 * t4, r = wm * (D / 2) + m * 16 + g;
      sla::atomic_add2(out + r * D + c, acc[m][n][0], acc[m][n][1]);
      sla::atomic_add2(out + (r + 8) * D + c, acc[m][n][2], acc[m][n][3]);
    }
}

// ---- 7. fold: kvwt[h][n][d1] = sum_d2 W[n][d2] KV[h][d1][d2] (W null: KV[h][d1][n]) ----
// Block = (16 rows d1, head), D threads (one output column n each): the KV rows sit in shared memory (broadcast
// reads) and W^T arrives in chunks of 32 d2, so every global read is coalesced.
// TILED (the bulk-copy kernels' layout, D = 128): [H][d1 / 64][n][64], each 128-byte row's 16-byte chunks in
// wgmma's 128-byte-swizzle order (chunk c at c ^ (n & 7)): one head's tile is one bulk copy, the K-major B operand
// of the epilogue's wgmma.
template <int D, bool TILED = false>
__global__ void __launch_bounds__(D) fold_kernel(const float* __restrict__ kv, const float* __restrict__ w32,
                                                 const bf16* __restrict__ w16, bf16* __restrict__ kvwt) {
  constexpr int R = 16, KC = 32;
  __shared__ float rows[R][D];
  __shared__ float wt[KC][D + 1];
  const int d10 = blockIdx.x * R, h = blockIdx.y, n = threadIdx.x;
  for (int i = 0; i < R; i++) rows[i][n] = kv[(int64_t(h) * D + d10 + i) * D + n];
  float acc[R];
#pragma unroll
  for (int i = 0; i < R; i++) acc[i] = 0.f;
  const bool has_w = w32 || w16;
  __syncthreads();
  if (!has_w) {
#pragma unroll
    for (int i = 0; i < R; i++) acc[i] = rows[i][n];
  } else {
    for (int c0 = 0; c0 < D; c0 += KC) {
      // wt[c][n'] = W[n'][c0 + c]: thread n reads row n' = ... coalesced along d2 per warp below.
      for (int idx = n; idx < KC * D; idx += D) {
        const int nn = idx / KC, c = idx % KC;
        const int64_t src = int64_t(nn) * D + c0 + c;
        wt[c][nn] = w32 ? w32[src] : __bfloat162float(w16[src]);
      }
      __syncthreads();
#pragma unroll 4
      for (int c = 0; c < KC; c++) {
        const float wv = wt[c][n];
#pragma unroll
        for (int i = 0; i < R; i++) acc[i] = fmaf(wv, rows[i][c0 + c], acc[i]);
      }
      __syncthreads();
    }
  }
  if constexpr (TILED) {
    static_assert(D == 128 && R == 16, "tiled fold: two 8-value chunks of one 64-wide half per thread");
    uint8_t* half = reinterpret_cast<uint8_t*>(kvwt) + ((int64_t(h) * 2 + d10 / 64) * D + n) * 128;
#pragma unroll
    for (int c = 0; c < 2; c++) {
      uint32_t w[4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        __nv_bfloat162 b2 = __floats2bfloat162_rn(acc[8 * c + 2 * i], acc[8 * c + 2 * i + 1]);
        w[i] = *reinterpret_cast<uint32_t*>(&b2);
      }
      const int chunk = (d10 % 64) / 8 + c;
      *reinterpret_cast<uint4*>(half + ((chunk ^ (n & 7)) << 4)) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  } else {
    bf16* out = kvwt + (int64_t(h) * D + n) * D + d10;
#pragma unroll
    for (int i = 0; i < R; i += 2)
      *reinterpret_cast<__nv_bfloat162*>(out + i) = __floats2bfloat162_rn(acc[i], acc[i + 1]);
  }
}

__global__ void bias_to_f32_kernel(const bf16* __restrict__ b16, const float* __restrict__ b32, int D,
                                   float* __restrict__ out) {
  const int d = threadIdx.x;
  if (d < D) out[d] = b32 ? b32[d] : __bfloat162float(b16[d]);
}

struct Geometry {
  int L, H, D, nq, nk, kc;
};

Geometry check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int bq, int bk, float topk) {
  for (const Tensor* t : {&q, &k, &v}) {
    expect_cuda(*t, "attention q/k/v");
    TD_CHECK(t->dtype() == DType::BF16 && t->dim() == 3 && t->is_contiguous(), "attention",
             "CUDA sla expects contiguous bf16 [L, H, Dh], got ", t->describe());
    TD_CHECK(reinterpret_cast<uintptr_t>(t->data()) % 16 == 0, "attention", t->describe(),
             " must be 16-byte aligned");
  }
  TD_CHECK(q.shape() == k.shape() && k.shape() == v.shape(), "attention", "q, k, v shapes differ: ",
           shape_str(q.shape()), " ", shape_str(k.shape()), " ", shape_str(v.shape()));
  Geometry g;
  g.L = int(q.size(0));
  g.H = int(q.size(1));
  g.D = int(q.size(2));
  TD_CHECK(q.size(0) > 0 && q.size(0) < (int64_t(1) << 30), "attention", "sequence length out of range: ", q.size(0));
  TD_CHECK(g.D == 64 || g.D == 128, "attention", "sla/sagesla on CUDA support head_dim 64 and 128, got ", g.D);
  TD_CHECK(bq > 0 && bk > 0, "--block-q/--block-k", "block sizes must be positive");
  g.nq = (g.L + bq - 1) / bq;
  g.nk = (g.L + bk - 1) / bk;
  TD_CHECK(g.nk <= sla_cfg::kMaxKeyBlocks, "attention", "sequence too long for the top-k kernel: ", g.nk,
           " key blocks (max ", sla_cfg::kMaxKeyBlocks, ")");
  g.kc = cpu::sla_topk_count(topk, g.nk);
  return g;
}

Tensor dev_empty(const Shape& s, DType dt) { return Tensor::empty(s, dt, Device::CUDA); }
void dev_zero(Tensor& t) { TD_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.nbytes(), stream())); }

// The block map's side stream: q pooling and score + top-k run there while the main stream runs linear_kv, kquant's
// dependants (vquant) and the fold, which leave the SMs' arithmetic mostly idle (vquant is bandwidth-bound, score
// is FMA-bound). Events fork and join it in stream order, so CUDA Graph capture records the same dependencies.
struct SideStream {
  cudaStream_t s;
  cudaEvent_t fork, kv_ready, pk_ready, join;
};
SideStream& side_stream() {
  static SideStream ss = [] {
    SideStream x;
    TD_CUDA_CHECK(cudaStreamCreateWithFlags(&x.s, cudaStreamNonBlocking));
    for (cudaEvent_t* e : {&x.fork, &x.kv_ready, &x.pk_ready, &x.join})
      TD_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    return x;
  }();
  return ss;
}

// Block table from pooled q [H, nq, D] and pooled k [H, nk, D], on stream st; the score matrix goes to *keep_scores
// when given (a caller on a side stream keeps it alive until
// its join, since the allocator reuses freed blocks in the main stream's order).
Tensor select_blocks(const Tensor& pq, const Tensor& pk, const Geometry& g, cudaStream_t st = stream(),
                     Tensor* keep_scores = nullptr) {
  Tensor S = dev_empty({g.H, g.nq, g.nk}, DType::F32);
  if (keep_scores) *keep_scores = S;
  {
    const dim3 grid(ceil_div(g.nk, kScoreTile), ceil_div(g.nq, kScoreTile), g.H);
    auto launch_score = [&](auto kern, int d) {
      const size_t smem = size_t(2) * d * kScorePitch * sizeof(float);
      TD_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      kern<<<grid, 256, smem, st>>>(pq.ptr<float>(), pk.ptr<float>(), g.nq, g.nk, S.ptr<float>());
    };
    if (g.D == 64)
      launch_score(score_kernel<64>, 64);
    else
      launch_score(score_kernel<128>, 128);
  }
  TD_CUDA_LAUNCH_CHECK();
  Tensor table = dev_empty({g.H, g.nq, g.kc}, DType::I32);
  if (g.nk <= kTopkWarpMaxKeys) {
    const size_t smem = size_t(kTopkRowsPerCta) * (256 + g.nk) * 4;
    TD_CUDA_CHECK(cudaFuncSetAttribute(topk_warp_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    topk_warp_kernel<<<dim3(ceil_div(g.nq, kTopkRowsPerCta), g.H), kTopkRowsPerCta * 32, smem, st>>>(
        S.ptr<float>(), g.nq, g.nk, g.kc, table.ptr<int32_t>());
  } else {
    const size_t smem = size_t(g.nk) * 4;
    TD_CHECK(smem <= device_props().sharedMemPerBlockOptin, "attention", "top-k selection needs ", smem,
             " bytes of shared memory");
    if (smem > 48 * 1024)
      TD_CUDA_CHECK(cudaFuncSetAttribute(topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    topk_kernel<<<dim3(g.nq, g.H), kTopkThreads, smem, st>>>(S.ptr<float>(), g.nq, g.nk, g.kc,
                                                            table.ptr<int32_t>());
  }
  TD_CUDA_LAUNCH_CHECK();
  return table;
}

void launch_stats(const Tensor& k, const Tensor& v, const Geometry& g, bool vmax, Tensor& ksum, Tensor& vm) {
  const int C = g.H * g.D;
  const int blocks = std::max(1, std::min(g.L, 4 * sm_count()));
  const int tokens = (g.L + blocks - 1) / blocks;
  const int grid = (g.L + tokens - 1) / tokens;
  const int threads = std::min(1024, std::max(32, C / 2));
  if (vmax)
    stats_kernel<true><<<grid, threads, 0, stream()>>>(k.ptr<bf16>(), v.ptr<bf16>(), g.L, C, tokens,
                                                        ksum.ptr<float>(), vm.ptr<float>());
  else
    stats_kernel<false><<<grid, threads, 0, stream()>>>(k.ptr<bf16>(), v.ptr<bf16>(), g.L, C, tokens,
                                                         ksum.ptr<float>(), nullptr);
  TD_CUDA_LAUNCH_CHECK();
}

const Tensor* check_param(const Tensor* t, const Shape& shape, const char* what) {
  if (!t) return nullptr;
  expect_cuda(*t, what);
  expect_shape(*t, shape, what);
  TD_CHECK(t->is_contiguous() && (t->dtype() == DType::F32 || t->dtype() == DType::BF16), what,
           "expected contiguous f32 or bf16, got ", t->describe());
  return t;
}

// SlaParams::profile: CUDA events between the stages, printed as one line once the stream has drained.
struct StageTimer {
  bool on;
  std::vector<std::pair<const char*, cudaEvent_t>> marks;
  explicit StageTimer(bool enabled) : on(enabled) { mark("start"); }
  void mark(const char* name) {
    if (!on) return;
    cudaEvent_t e;
    TD_CUDA_CHECK(cudaEventCreate(&e));
    TD_CUDA_CHECK(cudaEventRecord(e, stream()));
    marks.emplace_back(name, e);
  }
  ~StageTimer() {
    if (!on || marks.empty()) return;
    if (cudaEventSynchronize(marks.back().second) == cudaSuccess) {
      std::string line = "[sla profile]";
      float total = 0.f;
      for (size_t i = 1; i < marks.size(); i++) {
        float ms = 0.f;
        cudaEventElapsedTime(&ms, marks[i - 1].second, marks[i].second);
        total += ms;
        char buf[64];
        std::snprintf(buf, sizeof buf, " %s %.3f", marks[i].first, ms);
        line += buf;
      }
      std::printf("%s | total %.3f ms\n", line.c_str(), total);
    }
    for (auto& m : marks) cudaEventDestroy(m.second);
  }
};

}  // namespace

void sla_default_blocks(bool quantized, int* bq, int* bk) {
  if (quantized && cc() == 90) {
    *bq = sla_cfg::kSageBlockQSm90;
    *bk = sla_cfg::kSageBlockKSm90;
  } else {
    *bq = sla_cfg::kSlaBlockQ;
    *bk = sla_cfg::kSlaBlockK;
  }
}

Tensor sla_block_map(const Tensor& q, const Tensor& k, int bq, int bk, float topk) {
  Geometry g = check_inputs(q, k, k, bq, bk, topk);
  Tensor ksum = dev_empty({g.H, g.D}, DType::F32);
  dev_zero(ksum);
  Tensor none;
  launch_stats(k, k, g, false, ksum, none);
  Tensor pq = dev_empty({g.H, g.nq, g.D}, DType::F32), pk = dev_empty({g.H, g.nk, g.D}, DType::F32);
  launch_pool(q.ptr<bf16>(), g.L, g.H, g.D, bq, g.nq, nullptr, pq.ptr<float>(), stream());
  launch_pool(k.ptr<bf16>(), g.L, g.H, g.D, bk, g.nk, ksum.ptr<float>(), pk.ptr<float>(), stream());
  return select_blocks(pq, pk, g);
}

namespace {
// o (bf16) or, when out_q is set, the int8 output with its scales (sla_attention_int8).
void sla_attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* o, Tensor* out_q,
                        Tensor* out_scale, const SlaParams& p);
}  // namespace

void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const SlaParams& p) {
  expect_cuda(o, "attention output");
  expect_shape(o, q.shape(), "attention output");
  TD_CHECK(o.dtype() == DType::BF16 && o.is_contiguous(), "attention output", "expected contiguous bf16, got ",
           o.describe());
  sla_attention_impl(q, k, v, &o, nullptr, nullptr, p);
}

bool sla_int8_output_supported(const Tensor& q, const SlaParams& p) {
  if (!(q.dim() == 3 && q.size(2) == 128 && (p.kernel == 0 || p.kernel >= 3))) return false;
  sla::SparseArgs a;
  a.quantized = p.quantized && cc() >= 89;
  a.bq = p.bq;
  a.bk = p.bk;
  a.D = int(q.size(2));
  a.kernel = p.kernel;
  return sla::sparse_wants_tiled_kv(a);  // the bulk-copy kernels are the ones with the quantizing epilogue
}

void sla_attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out_q, Tensor& out_scale,
                        const SlaParams& p) {
  TD_CHECK(sla_int8_output_supported(q, p), "attention output",
           "int8 output needs sagesla with the pipelined sm_90 kernel (64x128 blocks, head_dim 128)");
  const int64_t L = q.size(0), H = q.size(1);
  expect_int8_attention_output(out_q, out_scale, L, H);
  sla_attention_impl(q, k, v, nullptr, &out_q, &out_scale, p);
}

namespace {
void sla_attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* o, Tensor* out_q,
                        Tensor* out_scale, const SlaParams& p) {
  Geometry g = check_inputs(q, k, v, p.bq, p.bk, p.topk);
  const bool quant = p.quantized && cc() >= 89;  // e4m3 mma needs sm_89; below, SageSLA runs the bf16 kernel
  cudaStream_t st = stream();
  const int64_t lpad = int64_t(g.nk) * p.bk;

  sla::SparseArgs a;
  a.L = g.L;
  a.H = g.H;
  a.D = g.D;
  a.bq = p.bq;
  a.bk = p.bk;
  a.nq = g.nq;
  a.nk = g.nk;
  a.kc = g.kc;
  a.quantized = quant;
  a.kernel = p.kernel;
  a.scale_log2 = (p.scale != 0.f ? p.scale : 1.f / std::sqrt(float(g.D))) * 1.4426950408889634f;
  a.q = q.ptr<bf16>();
  a.k = k.ptr<bf16>();
  a.v = v.ptr<bf16>();
  if (o) {
    a.o = o->ptr<bf16>();
  } else {
    a.oq = out_q->ptr<int8_t>();
    a.oscale = out_scale->ptr<float>();
  }
  a.tiled_kv = sla::sparse_wants_tiled_kv(a);

  const Tensor* w = p.sparse_only ? nullptr : check_param(p.proj_w, {g.D, g.D}, "proj_l.weight");
  const Tensor* b = p.sparse_only ? nullptr : check_param(p.proj_b, {g.D}, "proj_l.bias");
  StageTimer timer(p.profile);
  Tensor pq, pk, kq, kscale, vt, scores, table;
  const bool need_map = p.table == nullptr;
  // SageSLA's block map and the linear branch's fold run on a side stream (not with the per-stage profile, whose
  // events time one stream): pool_q from the start, next to the k/v pass; the fold once KV is complete; score and
  // top-k once kquant has pooled k. Every tensor the side stream touches lives until the join before the sparse
  // kernel.
  SideStream* side = quant && need_map && !p.profile ? &side_stream() : nullptr;
  if (side) {
    TD_CUDA_CHECK(cudaEventRecord(side->fork, st));
    TD_CUDA_CHECK(cudaStreamWaitEvent(side->s, side->fork));
  }
  cudaStream_t aux = side ? side->s : st;
  // 1 (+6): statistics; with the linear branch on, its k/v pass produces them (and KV, z) in one read. ksum, vmax,
  // z and KV share one buffer, zeroed by one memset.
  const int64_t hd = int64_t(g.H) * g.D;
  Tensor acc = dev_empty({hd * (p.sparse_only ? 2 : 3 + g.D)}, DType::F32);
  dev_zero(acc);
  Tensor ksum = acc.slice(0, 0, hd).view({g.H, g.D}), vmax;
  if (quant) vmax = acc.slice(0, hd, 2 * hd).view({g.H, g.D});
  Tensor kv, z, kvwt, bias;
  if (!p.sparse_only) {
    z = acc.slice(0, 2 * hd, 3 * hd).view({g.H, g.D});
    kv = acc.slice(0, 3 * hd, (3 + g.D) * hd).view({g.H, g.D, g.D});
    const int per_head = std::max(1, sla_cfg::kLinearWaves * sm_count() / g.H);
    int chunk = (g.L + per_head - 1) / per_head;
    constexpr int kT = sla_cfg::kLinearTile;
    chunk = std::max(kT, (chunk + kT - 1) / kT * kT);
    const dim3 grid(ceil_div(g.L, chunk), g.H);
    float* vm = quant ? vmax.ptr<float>() : nullptr;
    auto launch_lin = [&](auto kern, int d) {
      const int smem = 2 * 2 * sla_cfg::kLinearTile * (d + 8) * 2;
      TD_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      kern<<<grid, d / 16 * 32, smem, st>>>(a.k, a.v, g.L, g.H, chunk, kv.ptr<float>(), z.ptr<float>(),
                                             ksum.ptr<float>(), vm);
      TD_CUDA_LAUNCH_CHECK();
    };
    TD_CHECK(p.linear_kernel >= 0 && p.linear_kernel <= 2, "sla", "linear_kernel must be 0, 1 or 2, got ",
             p.linear_kernel);
    const bool forced = p.linear_kernel == 2;
    if (forced)
      TD_CHECK(linear_kv_sm90_fits(g.D, true), "sla", "the wgmma linear_kv kernel needs head_dim 128 and an sm_90 GPU");
    if (forced || (p.linear_kernel == 0 && linear_kv_sm90_fits(g.D)))
      launch_linear_kv_sm90(a.k, a.v, g.L, g.H, chunk, kv.ptr<float>(), z.ptr<float>(), ksum.ptr<float>(), vm, st);
    else if (g.D == 64)
      launch_lin(linear_kv_kernel<64>, 64);
    else
      launch_lin(linear_kv_kernel<128>, 128);
    timer.mark("linear_kv+stats");
  } else {
    launch_stats(k, v, g, quant, ksum, vmax);
    timer.mark("stats");
  }
  if (side) TD_CUDA_CHECK(cudaEventRecord(side->kv_ready, st));
  if (need_map) {
    pq = dev_empty({g.H, g.nq, g.D}, DType::F32);
    launch_pool(a.q, g.L, g.H, g.D, p.bq, g.nq, nullptr, pq.ptr<float>(), aux);
    timer.mark("pool_q");
  }

  // 7: the linear branch's KV folded with proj_l.
  if (!p.sparse_only) {
    if (side) TD_CUDA_CHECK(cudaStreamWaitEvent(aux, side->kv_ready));
    kvwt = dev_empty({g.H, g.D, g.D}, DType::BF16);
    {
      const float* w32 = w && w->dtype() == DType::F32 ? w->ptr<float>() : nullptr;
      const bf16* w16 = w && w->dtype() == DType::BF16 ? w->ptr<bf16>() : nullptr;
      if (g.D == 64)
        fold_kernel<64><<<dim3(64 / 16, g.H), 64, 0, aux>>>(kv.ptr<float>(), w32, w16, kvwt.ptr<bf16>());
      else if (a.tiled_kv)
        fold_kernel<128, true><<<dim3(128 / 16, g.H), 128, 0, aux>>>(kv.ptr<float>(), w32, w16, kvwt.ptr<bf16>());
      else
        fold_kernel<128><<<dim3(128 / 16, g.H), 128, 0, aux>>>(kv.ptr<float>(), w32, w16, kvwt.ptr<bf16>());
    }
    TD_CUDA_LAUNCH_CHECK();
    if (b) {
      bias = dev_empty({g.D}, DType::F32);
      bias_to_f32_kernel<<<1, g.D, 0, aux>>>(b->dtype() == DType::BF16 ? b->ptr<bf16>() : nullptr,
                                             b->dtype() == DType::F32 ? b->ptr<float>() : nullptr, g.D,
                                             bias.ptr<float>());
      TD_CUDA_LAUNCH_CHECK();
      a.bias = bias.ptr<float>();
    }
    timer.mark("fold");
    a.kvwt = kvwt.ptr<bf16>();
    a.z = z.ptr<float>();
  }

  pk = dev_empty({g.H, g.nk, g.D}, DType::F32);
  if (quant) {
    kq = dev_empty({g.H, lpad, g.D}, DType::I8);
    kscale = dev_empty({g.H, g.nk}, DType::F32);
    auto launch_k = [&](auto kern) {
      kern<<<dim3(g.nk, g.H), 256, 0, st>>>(a.k, g.L, g.H, g.nk, ksum.ptr<float>(), pk.ptr<float>(),
                                            kq.ptr<int8_t>(), kscale.ptr<float>());
      TD_CUDA_LAUNCH_CHECK();
    };
    if (p.bk == 64 && g.D == 64) launch_k(kquant_kernel<64, 64>);
    else if (p.bk == 64 && g.D == 128) launch_k(kquant_kernel<64, 128>);
    else if (p.bk == 128 && g.D == 64) launch_k(kquant_kernel<128, 64>);
    else if (p.bk == 128 && g.D == 128 && a.tiled_kv) launch_k(kquant_kernel<128, 128, true>);
    else if (p.bk == 128 && g.D == 128) launch_k(kquant_kernel<128, 128>);
    else fail("--block-k", cat("sagesla on CUDA supports key blocks of 64 or 128, got ", p.bk));
    timer.mark("kquant");
    if (side) {
      TD_CUDA_CHECK(cudaEventRecord(side->pk_ready, st));
      TD_CUDA_CHECK(cudaStreamWaitEvent(side->s, side->pk_ready));
      table = select_blocks(pq, pk, g, side->s, &scores);
      TD_CUDA_CHECK(cudaEventRecord(side->join, side->s));
    }
    vt = dev_empty({g.H, g.D, lpad}, DType::U8);
    auto launch_v = [&](auto kern, int threads) {
      kern<<<dim3(g.nk, g.H), threads, 0, st>>>(a.v, g.L, g.H, g.nk, vmax.ptr<float>(), vt.ptr<uint8_t>());
      TD_CUDA_LAUNCH_CHECK();
    };
    if (p.bk == 64 && g.D == 64) launch_v(vquant_kernel<64, 64>, vquant_threads<64, 64>());
    else if (p.bk == 64 && g.D == 128) launch_v(vquant_kernel<64, 128>, vquant_threads<64, 128>());
    else if (p.bk == 128 && g.D == 64) launch_v(vquant_kernel<128, 64>, vquant_threads<128, 64>());
    else if (p.bk == 128 && g.D == 128 && a.tiled_kv)
      launch_v(vquant_kernel<128, 128, true>, vquant_threads<128, 128>());
    else if (p.bk == 128 && g.D == 128) launch_v(vquant_kernel<128, 128>, vquant_threads<128, 128>());
    else fail("--block-k", cat("sagesla on CUDA supports key blocks of 64 or 128, got ", p.bk));
    timer.mark("vquant");
    a.kq = kq.ptr<int8_t>();
    a.kscale = kscale.ptr<float>();
    a.vt = vt.ptr<uint8_t>();
    a.vmax = vmax.ptr<float>();
  } else if (need_map) {
    launch_pool(a.k, g.L, g.H, g.D, p.bk, g.nk, ksum.ptr<float>(), pk.ptr<float>(), st);
    timer.mark("pool_k");
  }

  // 4-5: block table (with the side stream, it is being written there and joined before the sparse kernel).
  if (need_map) {
    if (!side) {
      table = select_blocks(pq, pk, g);
      timer.mark("score+topk");
    }
  } else {
    expect_cuda(*p.table, "sla block table");
    TD_CHECK(p.table->dtype() == DType::I32 && p.table->is_contiguous() && p.table->dim() == 3 &&
                 p.table->size(0) == g.H && p.table->size(1) == g.nq && p.table->size(2) >= 1,
             "sla block table", "expected I32 [", g.H, ", ", g.nq, ", kc], got ", p.table->describe());
    table = *p.table;
    a.kc = int(table.size(2));
  }
  a.table = table.ptr<int32_t>();
  if (p.table_out && need_map) *p.table_out = table;

  // 8: the sparse kernel (+ linear epilogue), after the side stream's block map.
  if (side) TD_CUDA_CHECK(cudaStreamWaitEvent(st, side->join));
  sla::launch_sparse(a, st);
  timer.mark("sparse");
}
}  // namespace

}  // namespace cuda
}  // namespace td
