// W8A8 GEMM, Hopper path: wgmma.mma_async m64n128k32 s8 x s8 -> s32 from swizzled shared memory fed by TMA in
// warp-specialized persistent kernels, per-128-K-block int32 -> fp32 fold, the same fused epilogues as the mma.sync
// path.
// Only compiled into sm_90a code; other archs get a stub that traps (the host never launches it there).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "core/allocator.h"
#include "cuda/sla_wgmma.cuh"
#include "cuda/sm90_sync.cuh"
#include "cuda/tensor_map.h"
#include "cuda/w8a8_gemm.cuh"

namespace td {
namespace cuda {

using namespace w8a8cfg;
using namespace w8a8;

namespace {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TD_W8A8_SM90 1
#endif

#ifdef TD_W8A8_SM90
// The wgmma helpers of sla_wgmma.cuh: the K-major 128-byte-swizzle descriptor (the TMA boxes' SWIZZLE_128B
// layout), fence / commit / wait, and the accumulator pin that keeps reads of the accumulators below a wait.
using sla::fence_operands;
using sla::wgmma_commit;
using sla::wgmma_desc_sw128;
using sla::wgmma_fence;
using sla::wgmma_wait;
using sla::wgmma_wait0;

// d[64] (+)= A(64x32, smem desc) · B(128x32, smem desc)^T; scale_d = 0 overwrites d.
__device__ __forceinline__ void wgmma_m64n128k32(int32_t (&d)[64], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,"
      "%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,"
      "%58,%59,%60,%61,%62,%63}, %64, %65, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]),
        "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]),
        "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]),
        "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]),
        "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]),
        "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]),
        "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]),
        "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}
// accf += (float)acc * scale, the per-128-K-block dequantization (s0 for row g, s1 for row g + 8).
__device__ __forceinline__ void fold(const int32_t (&acc)[64], float (&accf)[64], float s0, float s1) {
#pragma unroll
  for (int i = 0; i < 64; i++) {
    const float f = __int_as_float(acc[i] + 0x4B400000) - 12582912.f;  // exact for |acc| < 2^22
    accf[i] = fmaf(f, (i & 2) ? s1 : s0, accf[i]);
  }
}
// The fold with kFoldUnbiasEvery = R > 0 (w8a8_gemm_config.h): the FADD that removes the magic number is dropped, so
// the accumulators collect (1.5 * 2^23 + acc) * scale with one integer add and one FFMA per element, and the magic's
// share, 1.5 * 2^23 * (sum of the scales since the last correction), comes off every R K blocks and after the last.
// Between corrections the running values carry up to R * 1.5 * 2^23 * scale, so each FFMA rounds at that magnitude:
// about 1e-4 relative error instead of the exact fold's 1e-7 (NMSE ~1e-8 against the fp32 reference, 100x below the
// bf16 output rounding).
struct FoldBias {
  float b0 = 0.f, b1 = 0.f;  // scales folded since the last correction (rows g and g + 8)
};
__device__ __forceinline__ void fold_step(const int32_t (&acc)[64], float (&accf)[64], float s0, float s1,
                                          FoldBias& fb, int kb, int KB) {
  if constexpr (kFoldUnbiasEvery == 0) {
    fold(acc, accf, s0, s1);
  } else {
#pragma unroll
    for (int i = 0; i < 64; i++) accf[i] = fmaf(__int_as_float(acc[i] + 0x4B400000), (i & 2) ? s1 : s0, accf[i]);
    fb.b0 += s0, fb.b1 += s1;
    if ((kb + 1) % kFoldUnbiasEvery == 0 || kb + 1 == KB) {
#pragma unroll
      for (int i = 0; i < 64; i++) accf[i] = fmaf(-12582912.f, (i & 2) ? fb.b1 : fb.b0, accf[i]);
      fb.b0 = fb.b1 = 0.f;
    }
  }
}
// The fp32 accumulators of a tile start at the bias of their columns (zeros without one), so the epilogue has no bias
// to load. Loaded in the epilogue, the bias cost the K <= 2048 GEMMs 10-15% (its global loads sat on the critical
// path after the last MMA, with the tensor cores idle); here their latency hides behind the first K block.
__device__ __forceinline__ void init_acc_bias(const GemmArgs& p, float (&accf)[64], int n0, int t) {
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const float2 b = bias_pair(p, n0 + j * 8 + 2 * t);
    accf[4 * j] = b.x, accf[4 * j + 1] = b.y, accf[4 * j + 2] = b.x, accf[4 * j + 3] = b.y;
  }
}
// The arguments the epilogue sees once the bias is in the accumulators: a compile-time null bias, so bias_pair folds
// to zeros and its loads disappear.
__device__ __forceinline__ GemmArgs without_bias(const GemmArgs& p) {
  GemmArgs e = p;
  e.bias = nullptr;
  return e;
}
#endif

// ---------------------------------------------------------------------------------------------------------------
// "ws": TMA + mbarrier ring, one producer thread, two consumer warpgroups, persistent over tiles.

#ifdef TD_W8A8_SM90
using sm90::init_ring;
using sm90::mbar_arrive;
using sm90::mbar_expect_tx;
using sm90::mbar_wait;
__device__ __forceinline__ void named_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void named_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int x, int y) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(x), "r"(y)
      : "memory");
}
// Same, written into the same smem offset of every CTA in `mask` (and completing on each one's barrier there).
__device__ __forceinline__ void tma_load_2d_mc(uint32_t dst, const CUtensorMap* map, uint32_t bar, int x, int y,
                                               uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%3, "
      "%4}], [%2], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(x), "r"(y), "h"(mask)
      : "memory");
}
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// Arrives on the barrier at this CTA-local offset in cluster CTA `cta` (possibly this one). Default (CTA-scope)
// release, as CUTLASS's cluster barriers do: the arrival only says this CTA's own reads of its stage are done.
// `.release.cluster` put a cluster-wide memory barrier in front of every arrival; ncu showed those MEMBAR/ERRBAR
// stalls as ~30% of the consumer warps' samples, which is why the multicast kernels ran at half speed.
__device__ __forceinline__ void mbar_arrive_cluster(uint32_t bar, uint32_t cta) {
  asm volatile(
      "{\n.reg .b32 ra;\nmapa.shared::cluster.u32 ra, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [ra];\n}\n" ::"r"(bar),
      "r"(cta)
      : "memory");
}
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// Where a persistent CTA is: its 1024-aligned ring base in shared memory, its rank in the cluster, and its cluster's
// index among the nclusters clusters of the grid (kCM CTAs each).
struct CtaPlace {
  uint32_t base, rank;
  int tid, wg, cid, nclusters;
};
template <int kCM>
__device__ __forceinline__ CtaPlace cta_place(const unsigned char* smem_raw) {
  CtaPlace c;
  c.base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  c.tid = int(threadIdx.x), c.wg = c.tid >> 7;
  c.rank = kCM > 1 ? cluster_rank() : 0u;
  c.cid = int(blockIdx.x) / kCM, c.nclusters = int(gridDim.x) / kCM;
  return c;
}
// Thread 0 sets up the ring (full: the producer's expect_tx arrival plus the TMA bytes; empty: one arrival per
// consumer warp of every CTA reading the stage), then the CTA, or with kCM > 1 the whole cluster, synchronizes: peers
// multicast into this CTA's ring and arrive on its barriers, so all must be initialized first.
template <int kCM, int S>
__device__ __forceinline__ void init_ring_synced(uint64_t (&full_bar)[S], uint64_t (&empty_bar)[S]) {
  if (threadIdx.x == 0) init_ring(full_bar, empty_bar, 1, 8 * kCM);
  if (kCM > 1)
    cluster_sync_all();
  else
    __syncthreads();
}
// A consumer warp no longer reads ring stage `s`: lane 0 arrives on its empty barrier in every CTA of the cluster
// that reads it (the producer refills the stage once all consumer warps have said so).
template <int kCM>
__device__ __forceinline__ void release_stage(uint64_t* empty_bar, int s, int lane) {
  if (lane != 0) return;
  if (kCM == 1) {
    mbar_arrive(smem_u32(&empty_bar[s]));
  } else {
#pragma unroll
    for (int r = 0; r < kCM; r++) mbar_arrive_cluster(smem_u32(&empty_bar[s]), uint32_t(r));
  }
}
// The epilogue of one 64 x 128 warpgroup tile (rows from mw, columns from n0; bias already in accf): bf16 / int8
// through the warpgroup's staging buffer `buf` (named barrier `bar`), the gated residual the same way, f32 directly.
template <OutMode kMode, int kPending = 0>
__device__ __forceinline__ void store_wg_tile(const GemmArgs& p, const float (&accf)[64], const int32_t (&acc)[64],
                                              int mw, int n0, int row0, int row1, int warp, int g, int t, int tid_wg,
                                              uint32_t buf, int bar, const CUtensorMap& tmC) {
  if constexpr (kMode == OutMode::BF16 || kMode == OutMode::Int8) {
    store_half_staged<kMode, kPending>(p, accf, mw, n0, row0, row1, warp, g, t, tid_wg, buf, bar, &tmC);
  } else if constexpr (kMode == OutMode::Residual) {
    store_half_residual_staged(p, accf, mw, n0, warp, g, t, tid_wg, buf, bar);
  } else {
    store_tile<kMode>(p, accf, acc, row0, row1, n0, t);
  }
}
// The producer thread of the persistent kernels: for this cluster's tiles (kCM * kARows output rows, kBNt columns;
// blockIdx.x / kCM = cid of nclusters), every K block goes into the next of kStages ring stages: this CTA's kARows-row
// A box, then the kBNt-row W box, or with kCM > 1 its 1/kCM slice multicast to the whole cluster (the empty barrier
// counted every CTA's consumers, so the slice may go into all of them). Rows past M (A's last tile, or a CTA past M
// in an odd last cluster tile) are zero-filled by the TMA unit and still count toward the bytes; their stores are
// skipped.
template <int kStages, int kARows, int kBNt, int kCM>
__device__ __forceinline__ void produce_tiles(const CUtensorMap& tmA, const CUtensorMap& tmB, const GemmArgs& p,
                                              uint32_t base, uint64_t* full_bar, uint64_t* empty_bar, int cid,
                                              int nclusters, int tiles, int KB, uint32_t rank) {
  constexpr int kStageBytesT = (kARows + kBNt) * kBK;
  int stage = 0;
  uint32_t phase = 0;
  for (int tile = cid; tile < tiles; tile += nclusters) {
    int m0, n0;
    tile_coords(p, kCM * kARows, kBNt, &m0, &n0, tile);
    m0 += int(rank) * kARows;
    for (int kb = 0; kb < KB; kb++) {
      mbar_wait(smem_u32(&empty_bar[stage]), phase ^ 1);
      const uint32_t fb = smem_u32(&full_bar[stage]), sA = base + stage * kStageBytesT;
      mbar_expect_tx(fb, kStageBytesT);
      tma_load_2d(sA, &tmA, fb, kb * kBK, m0);
      if (kCM == 1) {
        tma_load_2d(sA + kARows * kBK, &tmB, fb, kb * kBK, n0);
      } else {
        constexpr int rows = kBNt / kCM;
        tma_load_2d_mc(sA + kARows * kBK + rank * rows * kBK, &tmB, fb, kb * kBK, n0 + int(rank) * rows,
                       uint16_t((1u << kCM) - 1));
      }
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
  }
}
// One consumer thread's rows in tile `tile` of a grid of kTileRows x kBNt (cluster) tiles: the CTA's first row m0
// (row_off rows into the cluster tile) and first column n0, the two rows of the thread's m64 fragments (warpgroup cw,
// warp, g), and the scales it folds with: the tile's weight-scale row and its rows' activation-scale rows (clamped to
// M - 1; the stores skip rows past M).
struct WgRows {
  int m0, n0, row0, row1;
  const float *swp, *sa0, *sa1;
};
template <int kTileRows, int kBNt>
__device__ __forceinline__ WgRows wg_rows(const GemmArgs& p, int tile, int row_off, int cw, int warp, int g, int KB) {
  WgRows r;
  tile_coords(p, kTileRows, kBNt, &r.m0, &r.n0, tile);
  r.m0 += row_off;
  r.row0 = r.m0 + cw * 64 + warp * 16 + g, r.row1 = r.row0 + 8;
  r.swp = p.sw + size_t(r.n0 / kBN) * KB;
  r.sa0 = p.sa + size_t(min(r.row0, p.M - 1)) * KB;
  r.sa1 = p.sa + size_t(min(r.row1, p.M - 1)) * KB;
  return r;
}
// The frame of the persistent kernels ws, ws256 and ws2: this CTA's place, the ring set up (for the cluster with
// kCM > 1), warpgroup 0's thread 0 producing kCM * kARows x kBNt tiles into the kStages ring (the rest of that
// warpgroup idles), and the consumer warpgroups running consume(place, tiles, K blocks, cw = wg - 1). kMaxNreg moves
// registers from the producer warpgroup to the consumers (kWideProducerRegs / kWideConsumerRegs). No CTA of a cluster
// exits while a peer can still arrive on its barriers.
template <int kStages, int kARows, int kBNt, int kCM, bool kMaxNreg, class Consume>
__device__ __forceinline__ void persistent_frame(const CUtensorMap& tmA, const CUtensorMap& tmB, const GemmArgs& p,
                                                 const unsigned char* smem_raw, uint64_t (&full_bar)[kStages],
                                                 uint64_t (&empty_bar)[kStages], Consume&& consume) {
  const CtaPlace cp = cta_place<kCM>(smem_raw);
  const int tiles = ((p.M + kCM * kARows - 1) / (kCM * kARows)) * (p.N / kBNt);  // cluster tiles
  const int KB = p.K / kBK;
  init_ring_synced<kCM>(full_bar, empty_bar);
  if (cp.wg == 0) {
    if (kMaxNreg) sm90::setmaxnreg_dec<kWideProducerRegs>();
    if (cp.tid == 0)
      produce_tiles<kStages, kARows, kBNt, kCM>(tmA, tmB, p, cp.base, full_bar, empty_bar, cp.cid, cp.nclusters, tiles,
                                                KB, cp.rank);
  } else {
    if (kMaxNreg) sm90::setmaxnreg_inc<kWideConsumerRegs>();
    consume(cp, tiles, KB, __shfl_sync(0xffffffffu, cp.wg - 1, 0));
    drain_tma_stores();
  }
  if (kCM > 1) cluster_sync_all();
}
#endif


// kCM CTAs of a cluster take kCM vertically adjacent 128-row tiles of the same 128 output columns: each loads its own
// A tile and 1/kCM of the shared W tile, multicast to all of them (L2 traffic per CTA 16 + 16/kCM KiB per K block
// instead of 32: 128x128 int8 tiles are L2-bandwidth bound, not tensor-core bound).
template <OutMode kMode, int kCM>
__global__ void __launch_bounds__(kWsThreads, 1)
    w8a8_gemm_ws_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB,
                        const __grid_constant__ CUtensorMap tmC, const GemmArgs p) {
#ifdef TD_W8A8_SM90
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t full_bar[kWsStages], empty_bar[kWsStages];
  persistent_frame<kWsStages, kBM, kBN, kCM, false>(
      tmA, tmB, p, smem_raw, full_bar, empty_bar, [&](const CtaPlace& cp, int tiles, int KB, int cw) {
  const uint32_t base = cp.base, rank = cp.rank;
  const int tid = cp.tid, cid = cp.cid, nclusters = cp.nclusters;
  const int warp = (tid >> 5) & 3, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  int stage = 0;
  uint32_t phase = 0;
  // Named barriers 1 (WG1 has issued -> WG0 may) and 2 (WG0 has issued -> WG1 may), 256 consumer threads each.
  const int issues = ((tiles - cid + nclusters - 1) / nclusters) * KB;
  int issue = 0;
  for (int tile = cid; tile < tiles; tile += nclusters) {
    const WgRows r = wg_rows<kCM * kBM, kBN>(p, tile, int(rank) * kBM, cw, warp, g, KB);
    int32_t acc[64];
    float accf[64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc[i] = 0;
    init_acc_bias(p, accf, r.n0, t);  // (raw int32 output has no bias and never reads accf)
    FoldBias fb;
    for (int kb = 0; kb < KB; kb++) {
      // Scales first: their global-load latency hides behind the wait and the MMAs.
      float s0 = 0.f, s1 = 0.f;
      if (kMode != OutMode::RawI32) {
        const float sw = __ldg(r.swp + kb);
        s0 = r.row0 < p.M ? __ldg(r.sa0 + kb) * sw : 0.f;
        s1 = r.row1 < p.M ? __ldg(r.sa1 + kb) * sw : 0.f;
      }
      mbar_wait(smem_u32(&full_bar[stage]), phase);
      // Issue order alternates WG0, WG1, WG0, ...: the tensor cores then run one warpgroup's block while the other
      // folds (left free, both would issue, finish and fold together with the tensor cores idle).
      if (cw == 1 || issue > 0) named_sync(cw == 0 ? 1 : 2);
      const uint32_t st = base + stage * kStageBytes;
      const uint64_t da = wgmma_desc_sw128(st + cw * 64 * kBK), db = wgmma_desc_sw128(st + kBM * kBK);
      fence_operands(acc);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kBK / 32; kk++) {
        const int accumulate = (kMode == OutMode::RawI32) ? (kb > 0 || kk > 0) : (kk > 0);
        wgmma_m64n128k32(acc, da + uint64_t(kk * 2), db + uint64_t(kk * 2), accumulate);
      }
      wgmma_commit();
      if (cw == 0 || issue + 1 < issues) named_arrive(cw == 0 ? 2 : 1);
      issue++;
      wgmma_wait0();
      fence_operands(acc);
      release_stage<kCM>(empty_bar, stage, lane);
      if (++stage == kWsStages) stage = 0, phase ^= 1;
      if (kMode != OutMode::RawI32) fold_step(acc, accf, s0, s1, fb, kb, KB);
    }
    store_tile<kMode>(without_bias(p), accf, acc, r.row0, r.row1, r.n0, t);
  }
  });
#else
  __trap();  // never launched: the host checks w8a8_wgmma_available()
#endif
}

// [rows, K] int8, row-major: 128 x 128-byte boxes with the 128-byte swizzle (wgmma's K-major SWIZZLE_128B layout).
CUtensorMap make_tile_map(const int8_t* ptr, int rows, int K, int box_rows, const char* what) {
  TD_CHECK(K % 16 == 0, "w8a8 gemm", what, ": TMA needs 16-byte aligned rows");
  const uint64_t dims[2] = {uint64_t(K), uint64_t(rows)}, strides[1] = {uint64_t(K)};
  const uint32_t box[2] = {uint32_t(kBK), uint32_t(box_rows)};
  return encode_tensor_map(CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, ptr, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B,
                           what);
}

using WsKernel = void (*)(CUtensorMap, CUtensorMap, CUtensorMap, GemmArgs);

// Launches a persistent warp-specialized kernel. A (cluster) tile is bm output rows by bn columns; a cluster is kCM
// CTAs stacked along M, each loading its own a_rows-row A box and 1/kCM of the bn-row W box (multicast to the
// cluster). Grid: min(tiles, co-resident clusters), the latter found once per kernel (`max_clusters`, 0 = not yet:
// GPCs have odd SM counts, so fewer 2-CTA clusters fit than SMs / 2).
// With `tma_store` (ws3, ws2, ws256 from kWideTmaMinK on), bf16 / int8 output leaves through TMA stores of the staged
// halves (store_half_staged) unless TD_W8A8_TMA_STORE=0 or the output is not 16-byte aligned; elsewhere tmC is a
// placeholder the kernel never reads (w8a8_gemm_config.h has the measurements).
bool tma_store_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("TD_W8A8_TMA_STORE");
    return !(e && e[0] == '0');
  }();
  return on;
}
CUtensorMap make_output_map(const GemmArgs& p, OutMode mode) {
  const bool bf = mode == OutMode::BF16;
  const uint64_t dims[2] = {uint64_t(p.N), uint64_t(p.M)}, strides[1] = {uint64_t(p.N) * (bf ? 2 : 1)};
  const uint32_t box[2] = {bf ? 64u : 128u, 64u};  // one 128-byte-swizzle box: 64 rows x 128 bytes
  return encode_tensor_map(bf ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, p.out, dims,
                           strides, box, CU_TENSOR_MAP_SWIZZLE_128B, "output");
}

void launch_persistent(WsKernel kernel, int kCM, int threads, int smem, int a_rows, int bm, int bn, const GemmArgs& p0,
                       int& max_clusters, const char* name, OutMode mode, bool tma_store = false) {
  auto cluster_cfg = [&](cudaLaunchConfig_t& cfg, cudaLaunchAttribute& attr, unsigned grid) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = unsigned(kCM), attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
    cfg.gridDim = dim3(grid), cfg.blockDim = dim3(unsigned(threads)), cfg.dynamicSmemBytes = size_t(smem);
    cfg.stream = stream(), cfg.attrs = &attr, cfg.numAttrs = 1;
  };
  if (max_clusters == 0) {
    TD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    max_clusters = sm_count() / kCM;
    if (kCM > 1) {
      cudaLaunchConfig_t cfg{};
      cudaLaunchAttribute attr{};
      cluster_cfg(cfg, attr, unsigned(kCM * max_clusters));
      int n = 0;
      TD_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&n, kernel, &cfg));
      TD_CHECK(n > 0, "w8a8 gemm", "no cluster of ", kCM, " CTAs fits on this GPU");
      max_clusters = std::min(max_clusters, n);
    }
    // A/B knob for the persistent grid size (clusters); TD_W8A8_DEBUG=1 prints what was chosen.
    if (const char* e = std::getenv("TD_W8A8_WS_CLUSTERS")) {
      const int v = std::atoi(e);
      TD_CHECK(v > 0, "TD_W8A8_WS_CLUSTERS", "expected a positive count, got '", e, "'");
      max_clusters = v;
    }
    if (std::getenv("TD_W8A8_DEBUG"))
      std::fprintf(stderr, "w8a8 %s: cluster %d x 1, %d resident clusters, %d SMs\n", name, kCM, max_clusters,
                   sm_count());
  }
  const int64_t tiles = int64_t((p0.M + bm - 1) / bm) * (p0.N / bn);
  TD_CHECK(tiles < (int64_t(1) << 31), "w8a8 gemm", "problem too large: M=", p0.M, " N=", p0.N);
  const CUtensorMap ta = make_tile_map(p0.a, p0.M, p0.K, a_rows, "activation"),
                    tb = make_tile_map(p0.w, p0.N, p0.K, bn / kCM, "weight");
  GemmArgs p = p0;
  p.tma_store = tma_store && (mode == OutMode::BF16 || mode == OutMode::Int8) && tma_store_enabled() &&
                reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
  const CUtensorMap tc = p.tma_store ? make_output_map(p, mode) : ta;
  const unsigned grid = unsigned(kCM * std::min<int64_t>(tiles, max_clusters));
  if (kCM == 1) {
    kernel<<<grid, threads, smem, stream()>>>(ta, tb, tc, p);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr{};
  cluster_cfg(cfg, attr, grid);
  TD_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, ta, tb, tc, p));
}

template <OutMode kMode, int kCM>
void launch_ws(const GemmArgs& p) {
  static_assert(kBM == kBN, "one tensor-map box shape serves A and W");
  static int max_clusters = 0;  // per instantiation
  launch_persistent(w8a8_gemm_ws_kernel<kMode, kCM>, kCM, kWsThreads, kWsSmemBytes, kBM, kCM * kBM, kBN, p,
                    max_clusters, kCM > 1 ? "wsmc" : "ws", kMode);
}

template <int kCM>
void launch_ws_mode(int mode, const GemmArgs& p) {
  switch (OutMode(mode)) {
    case OutMode::RawI32: launch_ws<OutMode::RawI32, kCM>(p); break;
    case OutMode::BF16: launch_ws<OutMode::BF16, kCM>(p); break;
    case OutMode::F32: launch_ws<OutMode::F32, kCM>(p); break;
    case OutMode::Residual: launch_ws<OutMode::Residual, kCM>(p); break;
    case OutMode::Int8: launch_ws<OutMode::Int8, kCM>(p); break;
  }
}

// The launch of a kernel that folds every K block into fp32 (ws256, ws2, ws3) for output `mode`:
// launch(std::integral_constant<OutMode, m>{}) for the fp32 modes; raw int32 output runs on ws, the one kernel that
// keeps its int32 accumulators for the whole K loop.
template <class Launch>
void launch_folding(int mode, const GemmArgs& p, Launch launch) {
  switch (OutMode(mode)) {
    case OutMode::RawI32: launch_ws<OutMode::RawI32, 1>(p); break;
    case OutMode::BF16: launch(std::integral_constant<OutMode, OutMode::BF16>{}); break;
    case OutMode::F32: launch(std::integral_constant<OutMode, OutMode::F32>{}); break;
    case OutMode::Residual: launch(std::integral_constant<OutMode, OutMode::Residual>{}); break;
    case OutMode::Int8: launch(std::integral_constant<OutMode, OutMode::Int8>{}); break;
  }
}


// ---------------------------------------------------------------------------------------------------------------
// "ws256": 128 x 256 tiles (see w8a8_gemm_config.h), otherwise the ws kernel's structure.

using sm90::setmaxnreg_dec;
using sm90::setmaxnreg_inc;

// kCM > 1: clusters of kCM CTAs stacked along M share the 256-row W tile, each loading 256/kCM rows of it by TMA
// multicast (L2 reads per CTA per K block 16 + 32/kCM KiB).
// kTma: kWideTmaStages ring stages and two staging buffers per warpgroup (one per half), so that both halves leave
// through TMA stores without the second waiting for the first.
template <OutMode kMode, int kCM, bool kTma = false>
__global__ void __launch_bounds__(kWsThreads, 1)
    w8a8_gemm_ws256_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB,
                           const __grid_constant__ CUtensorMap tmC, const GemmArgs p) {
#ifdef TD_W8A8_SM90
  static_assert(kMode != OutMode::RawI32, "the halves share one int32 set: raw int32 output runs on ws");
  constexpr int kStages = kTma ? kWideTmaStages : kWideStages;  // ring stages
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t full_bar[kStages], empty_bar[kStages];
  persistent_frame<kStages, kBM, kWideBN, kCM, true>(
      tmA, tmB, p, smem_raw, full_bar, empty_bar, [&](const CtaPlace& cp, int tiles, int KB, int cw) {
    const uint32_t base = cp.base, rank = cp.rank;
    const int tid = cp.tid, cid = cp.cid, nclusters = cp.nclusters;
    const int warp = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    int stage = 0;
    uint32_t phase = 0;
    // Issue order alternates WG0, WG1, WG0, ... per 128-column half (named barriers 1 and 2, as in ws).
    const int issues = ((tiles - cid + nclusters - 1) / nclusters) * KB * 2;
    int issue = 0;
    for (int tile = cid; tile < tiles; tile += nclusters) {
      // The two halves' weight scales: r.swp[kb], r.swp[KB + kb].
      const WgRows r = wg_rows<kCM * kBM, kWideBN>(p, tile, int(rank) * kBM, cw, warp, g, KB);
      int32_t acc[64];
      float accf[2][64];
#pragma unroll
      for (int i = 0; i < 64; i++) acc[i] = 0;
      init_acc_bias(p, accf[0], r.n0, t);
      init_acc_bias(p, accf[1], r.n0 + kBN, t);
      FoldBias fb[2];
      for (int kb = 0; kb < KB; kb++) {
        const float a0 = r.row0 < p.M ? __ldg(r.sa0 + kb) : 0.f, a1 = r.row1 < p.M ? __ldg(r.sa1 + kb) : 0.f;
        const float w0 = __ldg(r.swp + kb), w1 = __ldg(r.swp + KB + kb);
        mbar_wait(smem_u32(&full_bar[stage]), phase);
        const uint32_t st = base + stage * kWideStageBytes;
        const uint64_t da = wgmma_desc_sw128(st + cw * 64 * kBK);
#pragma unroll
        for (int h = 0; h < 2; h++) {
          if (cw == 1 || issue > 0) named_sync(cw == 0 ? 1 : 2);
          const uint64_t db = wgmma_desc_sw128(st + kBM * kBK + h * kBN * kBK);
          fence_operands(acc);
          wgmma_fence();
#pragma unroll
          for (int kk = 0; kk < kBK / 32; kk++)
            wgmma_m64n128k32(acc, da + uint64_t(kk * 2), db + uint64_t(kk * 2), kk > 0);
          wgmma_commit();
          if (cw == 0 || issue + 1 < issues) named_arrive(cw == 0 ? 2 : 1);
          issue++;
          wgmma_wait0();
          fence_operands(acc);
          if (h == 1) release_stage<kCM>(empty_bar, stage, lane);
          const float ws = h ? w1 : w0;
          fold_step(acc, accf[h], a0 * ws, a1 * ws, fb[h], kb, KB);
        }
        if (++stage == kStages) stage = 0, phase ^= 1;
      }
      const uint32_t buf = base + kStages * kWideStageBytes + cw * (kTma ? 2 : 1) * kWideEpilogueBytes;
      const uint32_t buf1 = buf + (kTma ? kWideEpilogueBytes : 0);
      const int mw = r.m0 + cw * 64, tid_wg = tid & 127;
      store_wg_tile<kMode, kTma ? 1 : 0>(without_bias(p), accf[0], acc, mw, r.n0, r.row0, r.row1, warp, g, t, tid_wg,
                                         buf, 3 + cw, tmC);
      store_wg_tile<kMode, kTma ? 1 : 0>(without_bias(p), accf[1], acc, mw, r.n0 + kBN, r.row0, r.row1, warp, g, t,
                                         tid_wg, buf1, 3 + cw, tmC);
    }
  });
#else
  __trap();  // never launched: the host checks w8a8_wgmma_available()
#endif
}

template <OutMode kMode, int kCM>
void launch_ws256(const GemmArgs& p) {
  static int max_clusters = 0;  // per instantiation
  if constexpr (kCM == 1 && (kMode == OutMode::BF16 || kMode == OutMode::Int8)) {
    if (p.K >= kWideTmaMinK && tma_store_enabled()) {
      static int max_tma = 0;
      launch_persistent(w8a8_gemm_ws256_kernel<kMode, 1, true>, 1, kWsThreads, kWideTmaSmemBytes, kBM, kBM, kWideBN,
                        p, max_tma, "ws256 (TMA stores)", kMode, true);
      return;
    }
  }
  launch_persistent(w8a8_gemm_ws256_kernel<kMode, kCM>, kCM, kWsThreads, kWideSmemBytes, kBM, kCM * kBM, kWideBN, p,
                    max_clusters, kCM > 1 ? "ws256mc" : "ws256", kMode);
}

// ---------------------------------------------------------------------------------------------------------------
// "ws2": 128 x 128 tiles, two consumer warpgroups, each with two int32 accumulator sets (see w8a8_gemm_config.h).
// ptxas keeps the MMAs asynchronous here (no C7514) because every issue, wait and fold of the K loop runs on every
// path: a throwaway variant that folded after a wait placed under a data-dependent branch, or that skipped a wait on
// its first iteration, got every wgmma of the kernel serialized (C7514 / C7517 in the ptxas output).

#ifdef TD_W8A8_SM90

// One K block of a 64 x 128 warpgroup tile into `acc` (overwritten), from ring stage `st` (this warpgroup's A rows at
// a_off, the W tile after the A tile).
__device__ __forceinline__ void issue_block(int32_t (&acc)[64], uint32_t st, uint32_t a_off, uint32_t b_off) {
  const uint64_t da = wgmma_desc_sw128(st + a_off), db = wgmma_desc_sw128(st + b_off);
  fence_operands(acc);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kBK / 32; kk++) wgmma_m64n128k32(acc, da + uint64_t(kk * 2), db + uint64_t(kk * 2), kk > 0);
  wgmma_commit();
}
#endif

template <OutMode kMode, int kCM>
__global__ void __launch_bounds__(kWsThreads, 1)
    w8a8_gemm_ws2_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB,
                         const __grid_constant__ CUtensorMap tmC, const GemmArgs p) {
#ifdef TD_W8A8_SM90
  static_assert(kMode != OutMode::RawI32, "raw int32 output runs on ws");
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t full_bar[kWs2Stages], empty_bar[kWs2Stages];
  persistent_frame<kWs2Stages, kBM, kBN, kCM, true>(
      tmA, tmB, p, smem_raw, full_bar, empty_bar, [&](const CtaPlace& cp, int tiles, int KB, int cw) {
    const uint32_t base = cp.base, rank = cp.rank;
    const int tid = cp.tid, cid = cp.cid, nclusters = cp.nclusters;
    const int warp = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const uint32_t a_off = uint32_t(cw * 64 * kBK), b_off = uint32_t(kBM * kBK);
    int stage = 0, prev_stage = 0;
    uint32_t phase = 0;
    for (int tile = cid; tile < tiles; tile += nclusters) {
      const WgRows r = wg_rows<kCM * kBM, kBN>(p, tile, int(rank) * kBM, cw, warp, g, KB);
      const bool in0 = r.row0 < p.M, in1 = r.row1 < p.M;
      int32_t acc0[64], acc1[64];
      float accf[64];
      init_acc_bias(p, accf, r.n0, t);
      FoldBias fb;
      // Block kb's scales are read when its MMAs are issued and used one step later, when it is folded.
      float s0 = 0.f, s1 = 0.f;
      auto scales = [&](int kb, float& r0, float& r1) {
        const float ws = __ldg(r.swp + kb);
        r0 = in0 ? __ldg(r.sa0 + kb) * ws : 0.f;
        r1 = in1 ? __ldg(r.sa1 + kb) * ws : 0.f;
      };
      // Issue block kb into `cur` while block kb - 1 (in `prev`, issued one step earlier) is still running, then wait
      // for kb - 1 only, release its stage and fold it: the tensor cores always hold one of this warpgroup's blocks.
      auto step = [&](int kb, int32_t(&cur)[64], int32_t(&prev)[64]) {
        mbar_wait(smem_u32(&full_bar[stage]), phase);
        issue_block(cur, base + stage * kStageBytes, a_off, b_off);
        float n0s, n1s;
        scales(kb, n0s, n1s);
        wgmma_wait<1>();
        fence_operands(prev);
        release_stage<kCM>(empty_bar, prev_stage, lane);
        fold_step(prev, accf, s0, s1, fb, kb - 1, KB);
        s0 = n0s, s1 = n1s;
        prev_stage = stage;
        if (++stage == kWs2Stages) stage = 0, phase ^= 1;
      };
      mbar_wait(smem_u32(&full_bar[stage]), phase);
      issue_block(acc0, base + stage * kStageBytes, a_off, b_off);
      scales(0, s0, s1);
      prev_stage = stage;
      if (++stage == kWs2Stages) stage = 0, phase ^= 1;
      int kb = 1;
      for (; kb + 1 < KB; kb += 2) {
        step(kb, acc1, acc0);
        step(kb + 1, acc0, acc1);
      }
      // The last block: in acc1 if KB is even (the pairs ended on acc0), else still in acc0.
      auto finish = [&](int32_t(&last)[64]) {
        wgmma_wait0();
        fence_operands(last);
        release_stage<kCM>(empty_bar, prev_stage, lane);
        fold_step(last, accf, s0, s1, fb, KB - 1, KB);
      };
      if (kb < KB) {
        step(kb, acc1, acc0);
        finish(acc1);
      } else {
        finish(acc0);
      }
      const uint32_t buf = base + kWs2Stages * kStageBytes + cw * kWideEpilogueBytes;
      store_wg_tile<kMode>(without_bias(p), accf, acc0, r.m0 + cw * 64, r.n0, r.row0, r.row1, warp, g, t, tid & 127,
                           buf, 3 + cw, tmC);
    }
  });
#else
  __trap();  // never launched: the host checks w8a8_wgmma_available()
#endif
}

template <OutMode kMode, int kCM>
void launch_ws2(const GemmArgs& p) {
  static int max_clusters = 0;  // per instantiation
  launch_persistent(w8a8_gemm_ws2_kernel<kMode, kCM>, kCM, kWsThreads, kWs2SmemBytes, kBM, kCM * kBM, kBN, p,
                    max_clusters, kCM > 1 ? "ws2mc" : "ws2", kMode, true);
}


// ---------------------------------------------------------------------------------------------------------------
// "ws3": 192 x 128 tiles, three consumer warpgroups in rotation (see w8a8_gemm_config.h).

__device__ __forceinline__ void named_sync_n(int id, int n) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_arrive_n(int id, int n) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

template <OutMode kMode>
__global__ void __launch_bounds__(kW3Threads, 1)
    w8a8_gemm_ws3_kernel(const __grid_constant__ CUtensorMap tmA, const __grid_constant__ CUtensorMap tmB,
                         const __grid_constant__ CUtensorMap tmC, const GemmArgs p) {
#ifdef TD_W8A8_SM90
  static_assert(kMode != OutMode::RawI32, "raw int32 output runs on ws");
  extern __shared__ unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t full_bar[kW3Stages], empty_bar[kW3Stages];
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const int tid = threadIdx.x, wg = tid >> 7;
  const int tiles = ((p.M + kW3BM - 1) / kW3BM) * (p.N / kBN);
  const int KB = p.K / kBK;
  if (tid == 0) init_ring(full_bar, empty_bar, 1, 12);  // empty: one arrival per consumer warp
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<kW3ProducerRegs>();
    if (tid == 0)
      produce_tiles<kW3Stages, kW3BM, kBN, 1>(tmA, tmB, p, base, full_bar, empty_bar, int(blockIdx.x),
                                             int(gridDim.x), tiles, KB, 0u);
  } else {
    setmaxnreg_inc<kW3ConsumerRegs>();
    const int cw = __shfl_sync(0xffffffffu, wg - 1, 0), warp = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    int stage = 0;
    uint32_t phase = 0;
    // Issue order WG0, WG1, WG2, WG0, ...: warpgroup c waits on named barrier 1 + c, which the previous warpgroup
    // arrives on right after its issue (256 threads each). WG0's first issue needs no turn, and WG2's last arrival
    // (which nobody would wait for) is skipped.
    const int issues = ((tiles - int(blockIdx.x) + int(gridDim.x) - 1) / int(gridDim.x)) * KB;
    int issue = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const WgRows r = wg_rows<kW3BM, kBN>(p, tile, 0, cw, warp, g, KB);
      int32_t acc[64];
      float accf[64];
#pragma unroll
      for (int i = 0; i < 64; i++) acc[i] = 0;
      init_acc_bias(p, accf, r.n0, t);
      FoldBias fb;
      for (int kb = 0; kb < KB; kb++) {
        const float ws = __ldg(r.swp + kb);
        const float s0 = r.row0 < p.M ? __ldg(r.sa0 + kb) * ws : 0.f, s1 = r.row1 < p.M ? __ldg(r.sa1 + kb) * ws : 0.f;
        mbar_wait(smem_u32(&full_bar[stage]), phase);
        if (cw != 0 || issue > 0) named_sync_n(1 + cw, 256);
        const uint32_t st = base + stage * kW3StageBytes;
        const uint64_t da = wgmma_desc_sw128(st + cw * 64 * kBK), db = wgmma_desc_sw128(st + kW3BM * kBK);
        fence_operands(acc);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kBK / 32; kk++)
          wgmma_m64n128k32(acc, da + uint64_t(kk * 2), db + uint64_t(kk * 2), kk > 0);
        wgmma_commit();
        if (cw != 2 || issue + 1 < issues) named_arrive_n(1 + (cw + 1) % 3, 256);
        issue++;
        wgmma_wait0();
        fence_operands(acc);
        if (lane == 0) mbar_arrive(smem_u32(&empty_bar[stage]));
        if (++stage == kW3Stages) stage = 0, phase ^= 1;
        fold_step(acc, accf, s0, s1, fb, kb, KB);
      }
      const uint32_t buf = base + kW3Stages * kW3StageBytes + cw * kWideEpilogueBytes;
      store_wg_tile<kMode>(without_bias(p), accf, acc, r.m0 + cw * 64, r.n0, r.row0, r.row1, warp, g, t, tid & 127,
                           buf, 4 + cw, tmC);
    }
    drain_tma_stores();
  }
#else
  __trap();  // never launched: the host checks w8a8_wgmma_available()
#endif
}

template <OutMode kMode>
void launch_ws3(const GemmArgs& p) {
  static int max_clusters = 0;  // per instantiation (clusters of one CTA: SMs)
  launch_persistent(w8a8_gemm_ws3_kernel<kMode>, 1, kW3Threads, kW3SmemBytes, kW3BM, kW3BM, kBN, p, max_clusters,
                    "ws3", kMode, true);
}



}  // namespace

bool w8a8_wgmma_available() {
  static int avail = -1;
  if (avail < 0) {
    avail = 0;
    if (cuda_available() && cc() == 90) {
      // Which cubin the device would run (no launch, so this is safe inside graph capture). This project builds
      // sm_90a, never plain sm_90, so a 9.0 binary has the wgmma code.
      cudaFuncAttributes fa{};
      TD_CUDA_CHECK(cudaFuncGetAttributes(&fa, w8a8_gemm_ws3_kernel<OutMode::BF16>));
      avail = fa.binaryVersion == 90 ? 1 : 0;
    }
  }
  return avail == 1;
}

void launch_w8a8_wgmma(int mode, const GemmArgs& p, W8A8Kernel k) {
  if (k == W8A8Kernel::ByShape)
    k = p.N >= kW3MaxN ? W8A8Kernel::Ws256 : p.K <= kW3MaxK ? W8A8Kernel::Ws3 : W8A8Kernel::Ws2;
  // (Raw int32 output always runs on ws: launch_folding passes it on.) ws256 needs N % 256 == 0.
  if (k == W8A8Kernel::Ws2) {
    launch_folding(mode, p, [&](auto m) { launch_ws2<decltype(m)::value, 1>(p); });
  } else if (k == W8A8Kernel::Ws2Mc) {
    launch_folding(mode, p, [&](auto m) { launch_ws2<decltype(m)::value, kWsClusterM>(p); });
  } else if (k == W8A8Kernel::Ws3) {
    launch_folding(mode, p, [&](auto m) { launch_ws3<decltype(m)::value>(p); });
  } else if (k == W8A8Kernel::Ws256 && p.N % kWideBN == 0) {
    launch_folding(mode, p, [&](auto m) { launch_ws256<decltype(m)::value, 1>(p); });
  } else if (k == W8A8Kernel::Ws256Mc && p.N % kWideBN == 0) {
    launch_folding(mode, p, [&](auto m) { launch_ws256<decltype(m)::value, kWsClusterM>(p); });
  } else if (k == W8A8Kernel::WsMc) {
    launch_ws_mode<kWsClusterM>(mode, p);
  } else {
    launch_ws_mode<1>(mode, p);
  }
}

}  // namespace cuda
}  // namespace td
