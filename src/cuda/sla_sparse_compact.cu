// SageSLA's sparse branch on sm_90a with three CTAs per SM (sagesla 64x128 blocks, head_dim 128).
//
// The pipelined kernel (sla_sparse_pipelined.cu) overlaps P·V(c) with the softmax of c + 1 inside one warpgroup,
// which keeps the scores, the fresh P·V chain and o live together (229 registers) next to two-deep K / V rings:
// two CTAs per SM, and Nsight Compute shows each scheduler idle 59% of the time with only two warps to pick from.
// Here each key block runs Q·K^T -> softmax -> P·V in order, as TurboDiffusion's sm90 kernel does, and the overlap
// comes from the other CTAs on the SM instead:
// - the int32 scores and the P·V chain are never live together, so they share registers; P goes to P·V as the
//   register A operand (no shared-memory round trip, no barrier per block);
// - one K and one V^T slot, each refilled by one bulk copy as soon as the wgmma reading it has retired;
// - together <= 168 registers and ~64 KiB of shared memory per CTA, so three CTAs (12 warps) share an SM.
// K, V^T and the folded KVW^T tile come in the pipelined kernel's layouts (kquant / vquant / fold TILED), and the
// numerics are the same (exact int32 scores, e4m3 P·V with a fresh fp32 chain per block, tensor-core row sums), so
// both kernels are checked against the same emulation.
#include <cmath>
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

namespace cpt = sla_cfg::compact;
constexpr int BQ = cpt::kBlockQ, BK = cpt::kBlockK, D = cpt::kHeadDim, kThreads = BQ / sla_cfg::kRowsPerWarp * 32;
static_assert(kThreads == 128, "one warpgroup per CTA");
constexpr int kQOff = 0;                    // bf16 Q tile (phi(q) in the epilogue; then the output stage)
constexpr int kQiOff = kQOff + BQ * D * 2;  // int8 Q tile
constexpr int kKOff = kQiOff + BQ * D;      // K slot
constexpr int kKTile = BK * D;
constexpr int kVOff = kKOff + kKTile;  // V^T slot, right after K: the two halves of KVW^T land in K and V^T
constexpr int kVTile = D * BK;
constexpr int kOnesOff = kVOff + kVTile;  // e4m3 ones: the B operand of the row-sum wgmma
constexpr int kSmem = kOnesOff + 1024;
static_assert(kQiOff % 1024 == 0 && kKOff % 1024 == 0 && kVOff % 1024 == 0 && kOnesOff % 1024 == 0,
              "128-byte swizzle atoms");
constexpr int kKvwHalf = D * 64 * 2;  // one 64-wide half of the folded KVW^T tile (bf16)
static_assert(kKvwHalf == kKTile && kKvwHalf == kVTile, "a KVW^T half fills one slot");

// kCached: the whole table row fits the shared-memory cache (kc <= kSelCache, every real top-k), so the loop reads
// indices and K scales without the global-memory fallback's predicated address arithmetic.
template <bool kCached>
__global__ void __launch_bounds__(kThreads, cpt::kCtasPerSm) sparse_compact_kernel(const SparseArgs a) {
  extern __shared__ __align__(128) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  __shared__ float red[kThreads / 32];
  __shared__ int sel_s[sla_cfg::kSelCache];
  __shared__ float ksc_s[sla_cfg::kSelCache];
  __shared__ __align__(8) uint64_t kfull, vfull, kvw_full[2];
  __shared__ float vsc_s[D], z_s[D], bias_s[D];  // V's per-channel scale; the linear branch's z and proj_l bias
  const int qb = blockIdx.x, h = blockIdx.y;
  const int tid = threadIdx.x, t4 = tid % 4;
  const int q0 = qb * BQ, kc = a.kc;
  const int32_t* sel = a.table + (int64_t(h) * a.nq + qb) * kc;

  // Key block j of the head: its K tile into the K slot, its V^T tile into the V^T slot. Only thread 0 issues
  // copies; it refills a slot right after its own wait on the wgmma that read it, which retires that wgmma for the
  // whole warpgroup. Block b is the slot's b-th fill, hence parity b & 1.
  const int64_t lpad = int64_t(a.nk) * BK;
  auto load_k = [&](int j) {
    const uint32_t bar = sm90::smem_addr(&kfull);
    sm90::mbar_expect_tx(bar, kKTile);
    sm90::bulk_copy_g2s(smem_u32(smem + kKOff), a.kq + (int64_t(h) * lpad + int64_t(j) * BK) * D, kKTile, bar);
  };
  auto load_v = [&](int j) {
    const uint32_t bar = sm90::smem_addr(&vfull);
    sm90::mbar_expect_tx(bar, kVTile);
    sm90::bulk_copy_g2s(smem_u32(smem + kVOff), a.vt + (int64_t(h) * a.nk + j) * kVTile, kVTile, bar);
  };
  // Half 0 of the folded KV tile goes to the K slot after the last Q·K^T, half 1 to the V^T slot after the last P·V.
  auto load_kvw_half = [&](int hf) {
    const uint32_t bar = sm90::smem_addr(&kvw_full[hf]);
    sm90::mbar_expect_tx(bar, kKvwHalf);
    sm90::bulk_copy_g2s(smem_u32(smem + (hf ? kVOff : kKOff)),
                        reinterpret_cast<const uint8_t*>(a.kvwt + int64_t(h) * D * D) + hf * kKvwHalf, kKvwHalf,
                        bar);
  };

  load_q_tile_async<BQ, D, kThreads>(a, smem + kQOff, q0, h);
  if (tid == 0) {
    sm90::mbar_init(sm90::smem_addr(&kfull), 1);
    sm90::mbar_init(sm90::smem_addr(&vfull), 1);
    sm90::mbar_init(sm90::smem_addr(&kvw_full[0]), 1);
    sm90::mbar_init(sm90::smem_addr(&kvw_full[1]), 1);
    sm90::fence_mbarrier_init();
    // The first key block's copies start with the Q tile's, before the table row is staged.
    const int j0 = sel[0];
    load_k(j0);
    load_v(j0);
  }
  stage_row_and_head<D, kThreads>(a, h, sel, sel_s, ksc_s, vsc_s, z_s, bias_s);
  const bool linear = a.kvwt != nullptr;
  __syncthreads();
  auto sel_at = [&](int i) { return kCached || i < sla_cfg::kSelCache ? sel_s[i] : sel[i]; };
  auto ksc_at = [&](int i) {
    return kCached || i < sla_cfg::kSelCache ? ksc_s[i] : a.kscale[int64_t(h) * a.nk + sel[i]];
  };
  const float fscale = finish_q_prologue<BQ, D, kThreads>(a, smem + kQOff, smem + kQiOff, smem + kOnesOff, red);

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};
  // One base descriptor plus constant offsets (the 14-bit address field counts 16-byte units and shared addresses
  // stay below 2^18, so adding off >> 4 never carries out of it): built per tile, ptxas re-derived all four from
  // the shared base in every iteration (16 more instructions per key block in the SASS).
  const uint64_t db = wgmma_desc_sw128(smem_u32(smem));
  const uint64_t dq = db + (kQiOff >> 4), dk = db + (kKOff >> 4), dv = db + (kVOff >> 4), d1 = db + (kOnesOff >> 4);

  // Softmax of one block (sla_bulk_common.cuh), P packed as the m64k32 A fragments of P·V, whose register order
  // matches V's per-16-token permutation (sla_mma.cuh v_perm).
  auto softmax_t = [&](const int(&acc)[BK / 2], float(&alpha)[2], uint32_t(&pa)[BK / 32][4], int kbase,
                       float kscale, auto partial_tag) {
    constexpr bool kPartial = decltype(partial_tag)::value;
    const float f = fscale * kscale;
    float bias[2];
    block_row_max<kPartial>(acc, kbase, a.L, t4, f, m_r, alpha, bias);
#pragma unroll
    for (int kk = 0; kk < BK / 32; kk++) {
      float p[16];
      block_p16<kPartial>(acc, kk, kbase, a.L, t4, f, bias, p);
      pa[kk][0] = pack_e4m3x4(p[0], p[1], p[4], p[5]);
      pa[kk][1] = pack_e4m3x4(p[2], p[3], p[6], p[7]);
      pa[kk][2] = pack_e4m3x4(p[8], p[9], p[12], p[13]);
      pa[kk][3] = pack_e4m3x4(p[10], p[11], p[14], p[15]);
    }
  };

  for (int c = 0; c < kc; c++) {
    const int kbase = sel_at(c) * BK;
    const float ksc = ksc_at(c);
    float alpha[2];
    uint32_t pa[BK / 32][4];
    {
      int acc[BK / 2];  // Q·K^T of the block: int32 scores, m64n128 fragment layout (= 16 m16n8 tiles)
      sm90::mbar_wait(sm90::smem_addr(&kfull), c & 1);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 32; kk++) wgmma_m64n128k32_s8_ss(acc, dq + 2 * kk, dk + 2 * kk, kk);
      wgmma_commit();
      wgmma_wait0();
      fence_operands(acc);
      if (tid == 0) {
        if (c + 1 < kc)
          load_k(sel_at(c + 1));
        else if (linear)
          load_kvw_half(0);
      }
      if (kbase + BK > a.L)
        softmax_t(acc, alpha, pa, kbase, ksc, std::true_type{});
      else
        softmax_t(acc, alpha, pa, kbase, ksc, std::false_type{});
    }
    float t[D / 2], ls[4];  // the block's fresh fp32 P·V chain (two-level accumulation) and P's row sums
    sm90::mbar_wait(sm90::smem_addr(&vfull), c & 1);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 32; kk++) {
      wgmma_m64n128k32_e4m3(t, pa[kk], dv + 2 * kk, kk);
      wgmma_m64n8k32_e4m3(ls, pa[kk], d1 + 2 * kk, kk);
    }
    wgmma_commit();
    wgmma_wait0();
    fence_operands(t);
    fence_operands(ls);
    if (tid == 0) {
      if (c + 1 < kc)
        load_v(sel_at(c + 1));
      else if (linear)
        load_kvw_half(1);
    }
    accumulate_block<D>(o, l_r, t, ls, alpha);
  }

  // ---- epilogue: KVW^T's halves in the K and V^T slots; the output is staged where the bf16 Q tile was.
  static_assert(kQiOff - kQOff >= BQ * D * 2, "the output tile is staged in the bf16 Q tile");
  wgmma_sparse_epilogue<BQ, D, kThreads>(
      a, o, l_r, smem + kQOff, smem_u32(smem + kKOff),
      [&](int hf) { sm90::mbar_wait(sm90::smem_addr(&kvw_full[hf]), 0); }, smem + kQOff, vsc_s, z_s, bias_s, q0,
      h);
}

}  // namespace

bool compact_fits(const SparseArgs& a) { return a.quantized && a.bq == BQ && a.bk == BK && a.D == D && cc() == 90; }

void launch_sparse_compact(const SparseArgs& a, cudaStream_t stream) {
  TD_CHECK(compact_fits(a), "sla", "the compact kernel needs sagesla, 64x128 blocks, head_dim 128 and sm_90");
  TD_CHECK(a.tiled_kv, "sla", "the compact kernel needs K and V in the tiled layout");
  const int smem = kSmem + 1024;  // room to align the base to 1024 bytes
  auto launch = [&](auto kern) {
    allow_bulk_kernel_smem(kern, smem, "compact");
    // Three CTAs need the largest shared-memory carve-out of the unified L1.
    TD_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       int(cudaSharedmemCarveoutMaxShared)));
    kern<<<dim3(a.nq, a.H), kThreads, smem, stream>>>(a);
    TD_CUDA_LAUNCH_CHECK();
  };
  if (a.kc <= sla_cfg::kSelCache)
    launch(sparse_compact_kernel<true>);
  else
    launch(sparse_compact_kernel<false>);
}

}  // namespace sla
}  // namespace cuda
}  // namespace td
