// SageSLA's sparse branch on sm_90a, software-pipelined (sagesla 64x128 blocks, head_dim 128).
//
// The in-loop wgmma kernel of sla_sparse.cu runs each key block as load wait -> Q·K^T -> wait -> softmax -> P·V ->
// wait, so the tensor cores idle during the softmax and each thread also issues the block's cp.async copies. Here:
// - K and V^T arrive pre-swizzled and tile-contiguous (kquant / vquant TILED), so one thread moves a key block with
//   two 16 KiB bulk copies that complete on mbarriers; no other thread spends instructions on loads.
// - Each iteration issues Q·K^T of block c+1 and P·V of block c back to back, waits for the scores only, and runs
//   block c+1's softmax while P·V(c) is still on the tensor cores (FlashAttention-3's intra-warpgroup overlap).
// - K and V rings are 2 deep each and refilled two blocks ahead: K(c+3) and V(c+2) are requested at the end of
//   iteration c, when every warp is done with the slots they replace, and are needed one whole iteration later.
// The numerics are those of the in-loop kernel (exact int32 scores, e4m3 P·V with a fresh fp32 chain per block,
// row sums from the tensor core), so both are checked against the same emulation.
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "cuda/cuda_common.cuh"
#include "cuda/sla_bulk_common.cuh"
#include "cuda/sla_config.h"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_sparse.cuh"
#include "cuda/sla_sparse_common.cuh"
#include "cuda/sla_sparse_sm90.cuh"
#include "cuda/sla_wgmma.cuh"
#include "cuda/sla_wgmma_epilogue.cuh"
#include "cuda/sm90_sync.cuh"

namespace td {
namespace cuda {
namespace sla {

namespace {

namespace pc = sla_cfg::pipelined;
constexpr int BQ = pc::kBlockQ, BK = pc::kBlockK, D = pc::kHeadDim, kThreads = BQ / sla_cfg::kRowsPerWarp * 32;
static_assert(kThreads == 128, "one warpgroup per CTA");
constexpr int kQOff = 0;                     // bf16 Q tile (kept for the epilogue's phi(q))
constexpr int kQiOff = kQOff + BQ * D * 2;   // int8 Q tile
constexpr int kKOff = kQiOff + BQ * D;       // K ring
constexpr int kKTile = BK * D;
constexpr int kVOff = kKOff + pc::kStages * kKTile;  // V^T ring
constexpr int kVTile = D * BK;
constexpr int kPOff = kVOff + pc::kStages * kVTile;  // e4m3 P, two buffers (P(c) is read while P(c+1) is written)
constexpr int kPTile = BQ * BK;
constexpr int kOnesOff = kPOff + 2 * kPTile;  // e4m3 ones: the B operand of the row-sum wgmma
constexpr int kSmem = kOnesOff + 1024;
static_assert(kQiOff % 1024 == 0 && kKOff % 1024 == 0 && kVOff % 1024 == 0 && kPOff % 1024 == 0 && kOnesOff % 1024 == 0,
              "128-byte swizzle atoms");
constexpr int kKvwBytes = D * D * 2;  // the folded linear-branch tile (bf16, two swizzled 64-wide halves)
static_assert(kKvwBytes <= pc::kStages * kKTile, "the folded KV tile takes the K ring once the last scores are done");
static_assert(pc::kStages == 2, "the refill schedule below assumes two slots per ring");

__global__ void __launch_bounds__(kThreads, 2) sparse_pipelined_kernel(const SparseArgs a) {
  extern __shared__ __align__(128) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  __shared__ float red[kThreads / 32];
  __shared__ int sel_s[sla_cfg::kSelCache];
  __shared__ float ksc_s[sla_cfg::kSelCache];
  __shared__ __align__(8) uint64_t kfull[pc::kStages], vfull[pc::kStages], kvw_full;
  __shared__ float vsc_s[D], z_s[D], bias_s[D];  // V's per-channel scale; the linear branch's z and proj_l bias
  const int qb = blockIdx.x, h = blockIdx.y;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int q0 = qb * BQ, kc = a.kc;
  const int32_t* sel = a.table + (int64_t(h) * a.nq + qb) * kc;

  load_q_tile_async<BQ, D, kThreads>(a, smem + kQOff, q0, h);  // bf16 Q tile (kept for the epilogue's phi(q))
  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < pc::kStages; s++) {
      sm90::mbar_init(sm90::smem_addr(&kfull[s]), 1);
      sm90::mbar_init(sm90::smem_addr(&vfull[s]), 1);
    }
    sm90::mbar_init(sm90::smem_addr(&kvw_full), 1);
    sm90::fence_mbarrier_init();
  }
  stage_row_and_head<D, kThreads>(a, h, sel, sel_s, ksc_s, vsc_s, z_s, bias_s);
  const bool linear = a.kvwt != nullptr;
  __syncthreads();
  auto sel_at = [&](int i) { return i < sla_cfg::kSelCache ? sel_s[i] : sel[i]; };
  auto ksc_at = [&](int i) { return i < sla_cfg::kSelCache ? ksc_s[i] : a.kscale[int64_t(h) * a.nk + sel[i]]; };

  // Block b of the row lives in slot b & 1 of each ring; it is that slot's (b >> 1)-th fill, hence the parity.
  const int64_t lpad = int64_t(a.nk) * BK;
  auto load_k = [&](int b) {
    const uint32_t bar = sm90::smem_addr(&kfull[b & 1]);
    sm90::mbar_expect_tx(bar, kKTile);
    const int8_t* src = a.kq + (int64_t(h) * lpad + int64_t(sel_at(b)) * BK) * D;
    sm90::bulk_copy_g2s(smem_u32(smem + kKOff + (b & 1) * kKTile), src, kKTile, bar);
  };
  auto load_v = [&](int b) {
    const uint32_t bar = sm90::smem_addr(&vfull[b & 1]);
    sm90::mbar_expect_tx(bar, kVTile);
    const uint8_t* src = a.vt + (int64_t(h) * a.nk + sel_at(b)) * kVTile;
    sm90::bulk_copy_g2s(smem_u32(smem + kVOff + (b & 1) * kVTile), src, kVTile, bar);
  };
  // The folded KV tile of the linear branch goes where K was, after the last Q·K^T (see the loop).
  auto load_kvw = [&] {
    const uint32_t bar = sm90::smem_addr(&kvw_full);
    sm90::mbar_expect_tx(bar, kKvwBytes);
    sm90::bulk_copy_g2s(smem_u32(smem + kKOff), a.kvwt + int64_t(h) * D * D, kKvwBytes, bar);
  };
  auto wait_k = [&](int b) { sm90::mbar_wait(sm90::smem_addr(&kfull[b & 1]), (b >> 1) & 1); };
  auto wait_v = [&](int b) { sm90::mbar_wait(sm90::smem_addr(&vfull[b & 1]), (b >> 1) & 1); };
  if (tid == 0) {
    load_k(0);
    load_v(0);
    if (kc > 1) {
      load_k(1);
      load_v(1);
    }
  }

  const float fscale = finish_q_prologue<BQ, D, kThreads>(a, smem + kQOff, smem + kQiOff, smem + kOnesOff, red);

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};
  int acc[BK / 2];  // Q·K^T of one block: int32 scores, m64n128 fragment layout (= 16 m16n8 tiles)
  float t[D / 2];   // P·V of one block: the fresh fp32 chain of the two-level accumulation
  float ls[4];      // P's row sums (every column of the n8 tile)

  // Every wgmma here reads both operands from shared memory (Q int8, K, P e4m3, V^T, ones), so the only registers
  // an in-flight wgmma touches are its accumulators. With P as a register A operand, ptxas serialized every wgmma
  // of the kernel (C7513) once the softmax of block c+1 ran while P·V(c) was in flight.
  // Descriptors are built once: a k32 step adds 32 bytes (2 in the descriptor's 16-byte address field) and a ring
  // slot its size; shared addresses stay below 2^18, so the 14-bit field never carries. Rebuilt per wgmma they cost
  // ~100 (uniform) instructions per key block.
  const uint64_t dq = wgmma_desc_sw128(smem_u32(smem + kQiOff)), dk = wgmma_desc_sw128(smem_u32(smem + kKOff)),
                 dv = wgmma_desc_sw128(smem_u32(smem + kVOff)), dp = wgmma_desc_sw128(smem_u32(smem + kPOff)),
                 d1 = wgmma_desc_sw128(smem_u32(smem + kOnesOff));
  auto issue_qk = [&](int b) {
    const uint64_t k0 = dk + uint64_t((b & 1) * (kKTile >> 4));
#pragma unroll
    for (int kk = 0; kk < D / 32; kk++) wgmma_m64n128k32_s8_ss(acc, dq + 2 * kk, k0 + 2 * kk, kk);
    wgmma_commit();
  };
  auto issue_pv = [&](int b) {
    const uint64_t v0 = dv + uint64_t((b & 1) * (kVTile >> 4)), p0 = dp + uint64_t((b & 1) * (kPTile >> 4));
#pragma unroll
    for (int kk = 0; kk < BK / 32; kk++) {
      wgmma_m64n128k32_e4m3_ss(t, p0 + 2 * kk, v0 + 2 * kk, kk);
      wgmma_m64n8k32_e4m3_ss(ls, p0 + 2 * kk, d1 + 2 * kk, kk);
    }
    wgmma_commit();
  };
  // Softmax of block b (sla_bulk_common.cuh), P written to its buffer in the register order that matches V's
  // per-16-token permutation (sla_mma.cuh v_perm).
  auto softmax_t = [&](int b, float(&alpha)[2], int kbase, float kscale, auto partial_tag) {
    constexpr bool kPartial = decltype(partial_tag)::value;
    const float f = fscale * kscale;
    float bias[2];
    block_row_max<kPartial>(acc, kbase, a.L, t4, f, m_r, alpha, bias);
    // P to its buffer as the m16n8k32 A fragment would hold it (row g: keys 4t4.., 16 + 4t4.. of each k32 step),
    // in the 128-byte-swizzled K-major layout: 8 rows x 4 lanes of 4 bytes hit 32 different banks.
    uint8_t* prow = smem + kPOff + (b & 1) * kPTile + (warp * 16 + g) * BK + 4 * t4;
#pragma unroll
    for (int kk = 0; kk < BK / 32; kk++) {
      float s0[16];
      block_p16<kPartial>(acc, kk, kbase, a.L, t4, f, bias, s0);
      uint8_t* lo = prow + (((2 * kk) ^ g) << 4);
      uint8_t* hi = prow + (((2 * kk + 1) ^ g) << 4);
      *reinterpret_cast<uint32_t*>(lo) = pack_e4m3x4(s0[0], s0[1], s0[4], s0[5]);
      *reinterpret_cast<uint32_t*>(lo + 8 * BK) = pack_e4m3x4(s0[2], s0[3], s0[6], s0[7]);
      *reinterpret_cast<uint32_t*>(hi) = pack_e4m3x4(s0[8], s0[9], s0[12], s0[13]);
      *reinterpret_cast<uint32_t*>(hi + 8 * BK) = pack_e4m3x4(s0[10], s0[11], s0[14], s0[15]);
    }
    fence_proxy_async_smem();  // read by wgmma after the next barrier
  };
  // kbase and kscale are read by the caller before it waits on the tensor cores (shared-memory loads cannot move
  // across the wgmma asm, and after the wait their latency sat at the head of the softmax's dependency chain).
  auto softmax = [&](int b, float(&alpha)[2], int kbase, float kscale) {
    if (kbase + BK > a.L)
      softmax_t(b, alpha, kbase, kscale, std::true_type{});
    else
      softmax_t(b, alpha, kbase, kscale, std::false_type{});
  };
  auto accumulate = [&](const float(&alpha)[2]) { accumulate_block<D>(o, l_r, t, ls, alpha); };

  // Prologue: scores and P of block 0; then K slot 0 takes block 2.
  float alpha[2];
  wait_k(0);
  wgmma_fence();
  issue_qk(0);
  wgmma_wait0();
  fence_operands(acc);
  softmax(0, alpha, sel_at(0) * BK, ksc_at(0));
  __syncthreads();  // P(0) is complete, every warp is done with K slot 0
  if (tid == 0 && kc > 2) load_k(2);
  if (tid == 0 && kc == 1 && linear) load_kvw();

  for (int c = 0; c + 1 < kc; c++) {
    const int kbase_next = sel_at(c + 1) * BK;
    const float ksc_next = ksc_at(c + 1);
    wait_k(c + 1);
    wait_v(c);
    wgmma_fence();
    issue_qk(c + 1);
    issue_pv(c);
    wgmma_wait<1>();  // groups retire in order: the scores of c + 1 are ready, P·V(c) may still run
    fence_operands(acc);
    float an[2];
    softmax(c + 1, an, kbase_next, ksc_next);  // writes P(c + 1) to the other buffer while P·V(c) reads P(c)
    wgmma_wait0();
    fence_operands(t);
    fence_operands(ls);
    accumulate(alpha);
    alpha[0] = an[0];
    alpha[1] = an[1];
    __syncthreads();  // P(c + 1) is complete; every warp is done with K(c + 1) and V(c), whose slots take K(c + 3)
                      // and V(c + 2)
    if (tid == 0) {
      if (c + 3 < kc) load_k(c + 3);
      if (c + 2 < kc) load_v(c + 2);
      if (c + 2 == kc && linear) load_kvw();  // Q·K^T of the last block is done: the K ring is free for good
    }
  }
  wait_v(kc - 1);
  wgmma_fence();
  issue_pv(kc - 1);
  wgmma_wait0();
  fence_operands(t);
  fence_operands(ls);
  accumulate(alpha);

  // ---- epilogue: KVW^T sits in the K ring (both halves on kvw_full); the output is staged in the P buffers, free
  // once every warp's last P·V has retired.
  static_assert(2 * kPTile >= BQ * D * 2, "the output tile is staged in the P buffers");
  wgmma_sparse_epilogue<BQ, D, kThreads>(
      a, o, l_r, smem + kQOff, smem_u32(smem + kKOff),
      [&](int) { sm90::mbar_wait(sm90::smem_addr(&kvw_full), 0); }, smem + kPOff, vsc_s, z_s, bias_s, q0, h);
}

}  // namespace

bool pipelined_fits(const SparseArgs& a) {
  return a.quantized && a.bq == BQ && a.bk == BK && a.D == D && cc() == 90;
}

void launch_sparse_pipelined(const SparseArgs& a, cudaStream_t stream) {
  TD_CHECK(pipelined_fits(a), "sla", "the pipelined kernel needs sagesla, 64x128 blocks, head_dim 128 and sm_90");
  TD_CHECK(a.tiled_kv, "sla", "the pipelined kernel needs K and V in the tiled layout");
  const int smem = kSmem + 1024;  // room to align the base to 1024 bytes
  allow_bulk_kernel_smem(sparse_pipelined_kernel, smem, "pipelined");
  sparse_pipelined_kernel<<<dim3(a.nq, a.H), kThreads, smem, stream>>>(a);
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
