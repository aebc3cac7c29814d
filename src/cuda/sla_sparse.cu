// Block-sparse attention over the selected key blocks, mma.sync path (sm_80+; e4m3 P·V needs sm_89+), with the
// linear branch fused into the epilogue.
//
// One CTA = one (query block, head); one warp = 16 query rows. K/V tiles of the selected key blocks stream through
// a two-stage cp.async ring. SLA: bf16 m16n8k16 for Q·K^T and P·V. SageSLA: Q is quantized to int8 in the
// prologue (one scale per CTA tile, as TurboDiffusion's per-block quantization), K arrives pre-quantized (smoothed)
// from sla_attention.cu, s8 m16n8k32 gives exact int32 scores, P is quantized to e4m3 straight from the score
// registers and multiplied with the transposed e4m3 V (m16n8k32.e4m3, fp32 accumulators, one fresh chain per key
// block that is then added to the running output: SageAttention2's two-level accumulation).
//
// Epilogue (when the linear branch is on): o = O_s / l + (phi(q) · KVW) / den + b, where KVW = (phi(k)^T v) W^T
// was folded per head beforehand, phi(q) is rebuilt from the bf16 Q tile still in shared memory, and
// den = 1e-5 + phi(q)·z. The mma accumulates phi(q)·KVW directly into O_s·den, so no second accumulator is live.
#include <climits>
#include <cmath>
#include <cstdlib>
#include <string>

#include "cuda/cuda_common.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_sparse.cuh"
#include "cuda/sla_sparse_common.cuh"
#include "cuda/sla_sparse_sm90.cuh"
#include "cuda/sla_wgmma.cuh"

namespace td {
namespace cuda {
namespace sla {

namespace {

template <int BQ, int BK, int D, bool QUANT, bool WG = false>
struct Cfg {
  // K/V ring depth (sla_config.h): deeper for the 128x64 wgmma kernel, whose 247 registers allow one CTA per SM
  // anyway, so that the L2 latency of the next tiles hides behind more than one block of work.
  static constexpr int kStages = WG && BQ == 128 ? sla_cfg::kStagesWg128 : 2;
  static constexpr int kWarps = BQ / sla_cfg::kRowsPerWarp, kThreads = kWarps * 32;
  static constexpr int kQRow = D * 2;                 // bf16 Q tile row bytes
  static constexpr int kQiRow = D;                    // int8 Q tile row bytes
  static constexpr int kKRow = QUANT ? D : D * 2;     // K tile: rows = keys
  static constexpr int kVRows = QUANT ? D : BK;       // V tile: e4m3 rows = channels (transposed), bf16 rows = keys
  static constexpr int kVRow = QUANT ? BK : D * 2;
  static constexpr int kKTile = BK * kKRow, kVTile = kVRows * kVRow;
  static constexpr int kQOff = 0;
  static constexpr int kQiOff = BQ * kQRow;
  static constexpr int kKOff = kQiOff + (QUANT ? BQ * kQiRow : 0);
  static constexpr int kVOff = kKOff + kStages * kKTile;
  static constexpr int kEpiBytes = epilogue_bytes<D>();  // KVW tile + z + bias, aliased over the K/V ring
  // WG: 1 KiB of e4m3 ones after the ring, the B operand of the n8 wgmma that sums P's rows (see the loop).
  static constexpr int kOnesOff = kVOff + kStages * kVTile;
  static constexpr int kRingEnd = kOnesOff + (WG ? 1024 : 0);
  static constexpr int kSmem = kRingEnd > kKOff + kEpiBytes ? kRingEnd : kKOff + kEpiBytes;
  static constexpr int kQkSteps = (QUANT ? D / 2 : D) / 16;  // k16 steps of 16-bit units over the head dim
  static constexpr int kSTiles = BK / 8;
};

// Offsets of wgmma's swizzled K-major layouts: 128-byte rows as Swz<128>; 64-byte rows XOR with bits 7-8 of the
// offset (chunk ^ ((row >> 1) & 3)), not Swz<64>'s row & 3.
template <int RowBytes>
__device__ __forceinline__ int hw_swz_offset(int row, int chunk) {
  static_assert(RowBytes == 128 || RowBytes == 64, "wgmma tiles have 64- or 128-byte rows");
  if constexpr (RowBytes == 128) return Swz<128>::offset(row, chunk);
  return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4);
}

template <int BQ, int BK, int D, bool QUANT, bool WG = false>
__device__ __forceinline__ void load_kv(const SparseArgs& a, uint8_t* smem, int stage, int j, int h) {
  using C = Cfg<BQ, BK, D, QUANT, WG>;
  uint8_t* ks = smem + C::kKOff + stage * C::kKTile;
  uint8_t* vs = smem + C::kVOff + stage * C::kVTile;
  const int tid = threadIdx.x;
  if constexpr (!QUANT) {
    constexpr int kCh = D / 8;  // 16-byte chunks per row
    for (int idx = tid; idx < BK * kCh; idx += C::kThreads) {
      const int r = idx / kCh, ch = idx % kCh, t = j * BK + r;
      const int64_t row = (int64_t(t < a.L ? t : a.L - 1) * a.H + h) * D + ch * 8;
      const int n = t < a.L ? 16 : 0;
      cp_async16(ks + Swz<C::kKRow>::offset(r, ch), a.k + row, n);
      cp_async16(vs + Swz<C::kVRow>::offset(r, ch), a.v + row, n);
    }
  } else {
    // Each thread copies the same 16-byte chunk column of rows r0, r0 + R, ...: R is a multiple of 8 and every
    // swizzle here XORs the chunk with row bits below 8, so the smem offsets are r0's plus multiples of R rows.
    const int64_t lpad = int64_t(a.nk) * BK;
    constexpr int kKCh = D / 16, kKR = C::kThreads / kKCh;
    static_assert(C::kThreads % kKCh == 0 && kKR % 8 == 0 && BK % kKR == 0, "K tile copy pattern");
    {
      const int r0 = tid / kKCh, ch = tid % kKCh;
      const int8_t* kb = a.kq + (int64_t(h) * lpad + int64_t(j) * BK + r0) * D + ch * 16;
      uint8_t* kd = ks + Swz<C::kKRow>::offset(r0, ch);
#pragma unroll
      for (int i = 0; i < BK / kKR; i++) cp_async16(kd + i * kKR * C::kKRow, kb + i * kKR * D, 16);
    }
    constexpr int kVCh = BK / 16, kVR = C::kThreads / kVCh;
    static_assert(C::kThreads % kVCh == 0 && kVR % 8 == 0 && D % kVR == 0, "V tile copy pattern");
    {
      const int r0 = tid / kVCh, ch = tid % kVCh;
      const uint8_t* vb = a.vt + (int64_t(h) * D + r0) * lpad + int64_t(j) * BK + ch * 16;
      uint8_t* vd = vs + (WG ? hw_swz_offset<C::kVRow>(r0, ch) : Swz<C::kVRow>::offset(r0, ch));
#pragma unroll
      for (int i = 0; i < D / kVR; i++) cp_async16(vd + i * kVR * C::kVRow, vb + int64_t(i) * kVR * lpad, 16);
    }
  }
}

// WG: the Hopper variant (sagesla, Dh 128; 64x128 or 128x64 blocks): the same kernel with the two products issued
// as wgmma, one warpgroup per 64 query rows, so each K/V byte is read from shared memory once per 64 rows instead
// of once per 16. The K tiles (128-byte rows) already have wgmma's 128-byte-swizzle K-major layout; the 64-byte V^T
// rows of 128x64 use the 64-byte swizzle (hw_swz_offset). The base is aligned to 1024 bytes.
template <int BQ, int BK, int D, bool QUANT, bool WG = false>
__global__ void __launch_bounds__(BQ / sla_cfg::kRowsPerWarp * 32)
    sparse_kernel(const SparseArgs a) {
  using C = Cfg<BQ, BK, D, QUANT, WG>;
  constexpr int S = C::kStages;
  static_assert(!WG || (QUANT && D == 128 && ((BQ == 64 && BK == 128) || (BQ == 128 && BK == 64))),
                "wgmma variant: sagesla 64x128 or 128x64, Dh128 only");
  extern __shared__ __align__(128) uint8_t smem_raw[];
  uint8_t* smem = WG ? smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u) : smem_raw;
  __shared__ float red[C::kWarps];
  // The CTA's table row and the K scales of its blocks, copied once: read from global memory inside the loop they
  // form a dependent chain (index, then scale / tile address) of two L2 round trips per key block.
  __shared__ int sel_s[sla_cfg::kSelCache];
  __shared__ float ksc_s[sla_cfg::kSelCache];
  const int qb = blockIdx.x, h = blockIdx.y;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, t4 = lane % 4;
  const int q0 = qb * BQ;
  const int32_t* sel = a.table + (int64_t(h) * a.nq + qb) * a.kc;

  // Q tile (bf16, kept for the epilogue's phi(q)).
  load_q_tile_async<BQ, D, C::kThreads>(a, smem + C::kQOff, q0, h);
  // Blocks 0..S-2 in flight before the loop; one commit group per block (empty past kc) keeps the wait count fixed.
#pragma unroll
  for (int c = 0; c < S - 1; c++) {
    if (c < a.kc) load_kv<BQ, BK, D, QUANT, WG>(a, smem, c, sel[c], h);
    cp_async_commit();
  }
  const int ncache = min(a.kc, sla_cfg::kSelCache);
  for (int i = tid; i < ncache; i += C::kThreads) {
    const int j = sel[i];
    sel_s[i] = j;
    if constexpr (QUANT) ksc_s[i] = a.kscale[int64_t(h) * a.nk + j];
  }
  auto sel_at = [&](int i) { return i < sla_cfg::kSelCache ? sel_s[i] : sel[i]; };
  cp_async_wait<S - 1>();  // the Q group
  __syncthreads();

  if constexpr (WG) {
    static_assert(C::kOnesOff % 1024 == 0, "the ones tile must be 1024-byte aligned (128-byte swizzle atom)");
    for (int i = tid; i < 64; i += C::kThreads)
      reinterpret_cast<uint4*>(smem + C::kOnesOff)[i] = make_uint4(0x38383838u, 0x38383838u, 0x38383838u, 0x38383838u);
  }
  float qscale = 1.f;
  if constexpr (QUANT) {
    qscale = quantize_q_tile<BQ, D, C::kThreads>(smem + C::kQOff, smem + C::kQiOff, red);
  }

  // Q fragments are re-read from shared memory per k-step (one ldmatrix per 16 units) rather than held for the
  // whole head dim: at Dh = 128 the registers are needed for O and S.
  constexpr int kQFragRow = QUANT ? C::kQiRow : C::kQRow;
  const uint8_t* qfrag_base = smem + (QUANT ? C::kQiOff : C::kQOff) + 0;

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};

  for (int c = 0; c < a.kc; c++) {
    if (c + S - 1 < a.kc) load_kv<BQ, BK, D, QUANT, WG>(a, smem, (c + S - 1) % S, sel_at(c + S - 1), h);
    cp_async_commit();
    cp_async_wait<S - 1>();  // block c has landed
    if constexpr (WG) fence_proxy_async_smem();  // cp.async wrote through the generic proxy
    __syncthreads();
    const int j = sel_at(c);
    const uint8_t* ks = smem + C::kKOff + (c % S) * C::kKTile;
    const uint8_t* vs = smem + C::kVOff + (c % S) * C::kVTile;

    // S = Q K^T for 16 rows x BK keys.
    float s[C::kSTiles][4];
    float alpha[2];  // o's rescale for this block's row maxima
    if constexpr (QUANT) {
      // The int32 accumulators live in s's registers (reinterpreted), converted in place below.
      int(&si)[C::kSTiles][4] = reinterpret_cast<int(&)[C::kSTiles][4]>(s);
      if constexpr (WG) {
        uint32_t qa[C::kQkSteps][4];
#pragma unroll
        for (int kk = 0; kk < C::kQkSteps; kk++)
          ldmatrix_x4(qa[kk], qfrag_base + Swz<kQFragRow>::offset(warp * 16 + (lane % 16), kk * 2 + lane / 16));
        int(&acc)[BK / 2] = reinterpret_cast<int(&)[BK / 2]>(s);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < C::kQkSteps; kk++) {
          if constexpr (BK == 128)
            wgmma_m64n128k32_s8(acc, qa[kk], wgmma_desc_sw128(smem_u32(ks) + kk * 32), kk);
          else
            wgmma_m64n64k32_s8(acc, qa[kk], wgmma_desc_sw128(smem_u32(ks) + kk * 32), kk);
        }
        wgmma_commit();
        wgmma_wait0();
        fence_operands(acc);
      } else {
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++) si[n][0] = si[n][1] = si[n][2] = si[n][3] = 0;
#pragma unroll
      for (int kk = 0; kk < C::kQkSteps; kk++) {
        uint32_t qf[4];
        ldmatrix_x4(qf, qfrag_base + Swz<kQFragRow>::offset(warp * 16 + (lane % 16), kk * 2 + lane / 16));
#pragma unroll
        for (int np = 0; np < C::kSTiles / 2; np++) {
          uint32_t b[4];
          ldmatrix_x4(b, ks + Swz<C::kKRow>::offset(np * 16 + (lane / 16) * 8 + lane % 8, kk * 2 + (lane / 8) % 2));
          mma_s8(si[2 * np], qf, b[0], b[1]);
          mma_s8(si[2 * np + 1], qf, b[2], b[3]);
        }
      }
      }
      const float f = qscale * (c < sla_cfg::kSelCache ? ksc_s[c] : a.kscale[int64_t(h) * a.nk + j]) * a.scale_log2;
      // Softmax straight from the int32 scores, in base 2, with P already scaled by 448 for e4m3:
      //   max over int32 (f > 0, so it commutes with the scale; 3-input DPX max on sm_90),
      //   int32 -> fp32 exactly through the bits of 1.5*2^23 + s (|s| < 2^22: one integer add, no I2F),
      //   one FFMA: x = (1.5*2^23 + s) f - (1.5*2^23 f + m - log2 448), so ex2(x) = 448 * 2^(s f - m).
      // The bias rounding error is ~1e-7 of the largest possible |score| (D * 127^2 * f), far below e4m3's step.
      static_assert(D * 127 * 127 < (1 << 22), "magic-number conversion needs |score| < 2^22");
      const int kbase = j * BK;
      const bool partial = kbase + BK > a.L;  // only the last key block (uniform branch)
      if (partial) {
#pragma unroll
        for (int n = 0; n < C::kSTiles; n++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            if (kbase + n * 8 + 2 * t4 + (e & 1) >= a.L) si[n][e] = INT_MIN;
      }
      int mi[2] = {INT_MIN, INT_MIN};
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++) {
        mi[0] = __vimax3_s32(mi[0], si[n][0], si[n][1]);
        mi[1] = __vimax3_s32(mi[1], si[n][2], si[n][3]);
      }
      float bias[2];
      int_softmax_update(mi, f, m_r, alpha, bias);
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {  // reads the int bits before overwriting
          s[n][e] = ex2_ftz(fmaf(__uint_as_float(uint32_t(si[n][e]) + 0x4B400000u), f, -bias[e / 2]));
          if (partial && kbase + n * 8 + 2 * t4 + (e & 1) >= a.L) s[n][e] = 0.f;
        }
    } else {
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < C::kQkSteps; kk++) {
        uint32_t qf[4];
        ldmatrix_x4(qf, qfrag_base + Swz<kQFragRow>::offset(warp * 16 + (lane % 16), kk * 2 + lane / 16));
#pragma unroll
        for (int np = 0; np < C::kSTiles / 2; np++) {
          uint32_t b[4];
          ldmatrix_x4(b, ks + Swz<C::kKRow>::offset(np * 16 + (lane / 16) * 8 + lane % 8, kk * 2 + (lane / 8) % 2));
          mma_bf16(s[2 * np], qf, b[0], b[1]);
          mma_bf16(s[2 * np + 1], qf, b[2], b[3]);
        }
      }
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] *= a.scale_log2;
    
      // Online softmax in base 2; keys past L (only in the last block) are masked.
      const int kbase = j * BK;
      float mloc[2] = {-INFINITY, -INFINITY};
      if (kbase + BK > a.L) {  // only the partial last block (uniform branch)
#pragma unroll
        for (int n = 0; n < C::kSTiles; n++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            if (kbase + n * 8 + 2 * t4 + (e & 1) >= a.L) s[n][e] = -INFINITY;
      }
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) mloc[e / 2] = fmaxf(mloc[e / 2], s[n][e]);
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const float mn = fmaxf(m_r[r], quad_max(mloc[r]));
        alpha[r] = ex2_ftz(m_r[r] - mn);  // first block: exp2(-inf) = 0
        m_r[r] = mn;
        l_r[r] *= alpha[r];
      }
#pragma unroll
      for (int n = 0; n < C::kSTiles; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[n][e] = ex2_ftz(s[n][e] - m_r[e / 2]);
          l_r[e / 2] += s[n][e];
        }
    }
    // SageSLA rescales o as it adds the fresh P·V chain (one FMA); SLA accumulates into o, so rescale first.
    if constexpr (!QUANT) {
#pragma unroll
      for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[n][e] *= alpha[e / 2];
    }

    if constexpr (QUANT) {
      // P in e4m3 (already x448); the register order matches V's per-16-token permutation (sla_mma.cuh v_perm).
      uint32_t pa[BK / 32][4];
#pragma unroll
      for (int kk = 0; kk < BK / 32; kk++) {
        const float(&s0)[4] = s[4 * kk];
        const float(&s1)[4] = s[4 * kk + 1];
        const float(&s2)[4] = s[4 * kk + 2];
        const float(&s3)[4] = s[4 * kk + 3];
        pa[kk][0] = pack_e4m3x4(s0[0], s0[1], s1[0], s1[1]);
        pa[kk][1] = pack_e4m3x4(s0[2], s0[3], s1[2], s1[3]);
        pa[kk][2] = pack_e4m3x4(s2[0], s2[1], s3[0], s3[1]);
        pa[kk][3] = pack_e4m3x4(s2[2], s2[3], s3[2], s3[3]);
      }
      if constexpr (WG) {
        // The row sums of P come from the tensor core too: P times an n8 tile of e4m3 ones puts each row's sum
        // (of the e4m3 P that multiplies V, so numerator and denominator use the same weights) in every column,
        // replacing one FADD per score with 4 small wgmma per block; no quad reduction is needed at the end.
        float t[64], ls[4];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 32; kk++) {
          wgmma_m64n128k32_e4m3(t, pa[kk], BK == 128 ? wgmma_desc_sw128(smem_u32(vs) + kk * 32)
                                                     : wgmma_desc_sw64(smem_u32(vs) + kk * 32), kk);
          wgmma_m64n8k32_e4m3(ls, pa[kk], wgmma_desc_sw128(smem_u32(smem + C::kOnesOff) + kk * 32), kk);
        }
        wgmma_commit();
        wgmma_wait0();
        fence_operands(t);
        fence_operands(ls);
        accumulate_block<D>(o, l_r, t, ls, alpha);
      } else {
      // Row sums of the e4m3 P by the tensor core, as in the wgmma path (B = all ones: every column = the sum).
      constexpr uint32_t kOnes = 0x38383838u;
      float ls[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int kk = 0; kk < BK / 32; kk++) mma_e4m3(ls, pa[kk], kOnes, kOnes);
      l_r[0] = fmaf(l_r[0], alpha[0], ls[0]);
      l_r[1] = fmaf(l_r[1], alpha[1], ls[2]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        float t0[4] = {0.f, 0.f, 0.f, 0.f}, t1[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int kk = 0; kk < BK / 32; kk++) {
          uint32_t b[4];
          ldmatrix_x4(b, vs + Swz<C::kVRow>::offset(np * 16 + (lane / 16) * 8 + lane % 8, kk * 2 + (lane / 8) % 2));
          mma_e4m3(t0, pa[kk], b[0], b[1]);
          mma_e4m3(t1, pa[kk], b[2], b[3]);
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
          o[2 * np][e] = fmaf(o[2 * np][e], alpha[e / 2], t0[e]);
          o[2 * np + 1][e] = fmaf(o[2 * np + 1][e], alpha[e / 2], t1[e]);
        }
      }
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                          pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, vs + Swz<C::kVRow>::offset(kk * 16 + ((lane / 8) % 2) * 8 + lane % 8, np * 2 + lane / 16));
          mma_bf16(o[2 * np], pa, b[0], b[1]);
          mma_bf16(o[2 * np + 1], pa, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  // ---- epilogue ----
  if constexpr (!QUANT) {  // SageSLA's l already holds whole rows (the tensor-core row sums)
    l_r[0] = quad_sum(l_r[0]);
    l_r[1] = quad_sum(l_r[1]);
  }
  sparse_epilogue<D, QUANT, C::kThreads>(a, o, l_r, smem + C::kQOff, smem + C::kKOff, h, q0);
}

template <int BQ, int BK, int D, bool QUANT, bool WG = false>
void launch_t(const SparseArgs& a, cudaStream_t stream) {
  using C = Cfg<BQ, BK, D, QUANT, WG>;
  auto kern = sparse_kernel<BQ, BK, D, QUANT, WG>;
  const int smem = C::kSmem + (WG ? 1024 : 0);  // WG: room to align the base to 1024 bytes
  cudaFuncAttributes fa;
  TD_CUDA_CHECK(cudaFuncGetAttributes(&fa, kern));
  TD_CHECK(size_t(smem) + fa.sharedSizeBytes <= device_props().sharedMemPerBlockOptin, "sla",
           "the sparse kernel needs ", smem, " + ", fa.sharedSizeBytes, " bytes of shared memory; this GPU allows ",
           device_props().sharedMemPerBlockOptin);
  TD_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kern<<<dim3(a.nq, a.H), C::kThreads, smem, stream>>>(a);
  TD_CUDA_LAUNCH_CHECK();
}

// The wgmma kernel is the sm_90 default for the geometries it covers (verified on an H100 against the mma.sync
// kernel and the emulation; 64x128 L=32760x12: sparse 2.0 ms vs 3.2 ms). TD_SLA_WGMMA=0 (or SlaParams::kernel = 1)
// selects the mma.sync kernel.
bool use_wgmma(const SparseArgs& a) {
  const bool fits = a.quantized && ((a.bq == 64 && a.bk == 128) || (a.bq == 128 && a.bk == 64)) && a.D == 128 &&
                    cc() == 90;
  if (a.kernel == 2) {
    TD_CHECK(fits, "sla", "the wgmma kernel needs sagesla, 64x128 or 128x64 blocks, head_dim 128 and an sm_90 GPU");
    return true;
  }
  if (a.kernel == 1) return false;
  static const bool on = [] {
    const char* e = std::getenv("TD_SLA_WGMMA");
    return !(e && e[0] == '0');
  }();
  return on && fits;
}

// The bulk-copy sm_90 kernels, where they fit (sagesla 64x128, Dh 128): the compact kernel (three CTAs per SM, the
// default: H100, L = 32760 x 12, top-k 0.1, sparse kernel 0.87 vs 1.09 ms; 75600 x 40: 14.6 vs 17.0 ms) or the
// pipelined one (intra-warpgroup overlap, two CTAs per SM; TD_SLA_SPARSE=pipelined). TD_SLA_PIPELINED=0 (or
// SlaParams::kernel = 2) selects the in-loop wgmma kernel above; kernel = 3 / 4 asks for the pipelined / compact
// kernel explicitly.
enum class Sm90Kernel { none, pipelined, compact };
Sm90Kernel bulk_kernel(const SparseArgs& a) {
  if (a.kernel == 3) {
    TD_CHECK(pipelined_fits(a), "sla",
             "the pipelined kernel needs sagesla, 64x128 blocks, head_dim 128 and an sm_90 GPU");
    return Sm90Kernel::pipelined;
  }
  if (a.kernel == 4) {
    TD_CHECK(compact_fits(a), "sla", "the compact kernel needs sagesla, 64x128 blocks, head_dim 128 and an sm_90 GPU");
    return Sm90Kernel::compact;
  }
  if (a.kernel != 0) return Sm90Kernel::none;
  static const Sm90Kernel choice = [] {
    const char* off = std::getenv("TD_SLA_PIPELINED");
    if (off && off[0] == '0') return Sm90Kernel::none;
    const char* e = std::getenv("TD_SLA_SPARSE");
    return e && std::string(e) == "pipelined" ? Sm90Kernel::pipelined : Sm90Kernel::compact;
  }();
  if (choice == Sm90Kernel::none || !use_wgmma(a)) return Sm90Kernel::none;
  if (choice == Sm90Kernel::compact) return compact_fits(a) ? Sm90Kernel::compact : Sm90Kernel::none;
  return pipelined_fits(a) ? Sm90Kernel::pipelined : Sm90Kernel::none;
}

template <int BQ, int BK, bool QUANT>
void launch_d(const SparseArgs& a, cudaStream_t stream) {
  if (a.D == 64)
    launch_t<BQ, BK, 64, QUANT>(a, stream);
  else
    launch_t<BQ, BK, 128, QUANT>(a, stream);
}

}  // namespace

bool sparse_wants_tiled_kv(const SparseArgs& a) { return bulk_kernel(a) != Sm90Kernel::none; }

void launch_sparse(const SparseArgs& a, cudaStream_t stream) {
  TD_CHECK(a.D == 64 || a.D == 128, "attention", "sla kernels support head_dim 64 and 128, got ", a.D);
  TD_CHECK(a.kc >= 1 && a.L >= 1, "sla", "empty block table");
  const bool q128k64 = a.bq == 128 && a.bk == 64, q64k128 = a.bq == 64 && a.bk == 128;
  TD_CHECK(q128k64 || q64k128, "--block-q/--block-k",
           "the CUDA sla kernels are compiled for 128x64 and 64x128 blocks, got ", a.bq, "x", a.bk);
  switch (bulk_kernel(a)) {
    case Sm90Kernel::pipelined:
      launch_sparse_pipelined(a, stream);
      return;
    case Sm90Kernel::compact:
      launch_sparse_compact(a, stream);
      return;
    case Sm90Kernel::none:
      break;
  }
  TD_CHECK(!a.tiled_kv, "sla", "K and V are in the pipelined kernel's layout but another kernel was chosen");
  TD_CHECK(!a.oq, "sla", "int8 output needs the pipelined or the compact kernel");
  if (use_wgmma(a)) {
    if (q64k128)
      launch_t<64, 128, 128, true, true>(a, stream);
    else
      launch_t<128, 64, 128, true, true>(a, stream);
    return;
  }
  if (a.quantized) {
    if (q128k64)
      launch_d<128, 64, true>(a, stream);
    else
      launch_d<64, 128, true>(a, stream);
  } else {
    if (q128k64)
      launch_d<128, 64, false>(a, stream);
    else
      launch_d<64, 128, false>(a, stream);
  }
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
