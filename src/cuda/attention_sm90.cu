// Dense attention on Hopper: bf16 wgmma with fp32 accumulation, TMA loads, one persistent CTA per SM.
//
// A CTA walks (query tile, head) items in grid-stride order. Its producer thread loads each item's Q tile (128 rows,
// TMA, two 64-wide halves with the 128-byte swizzle) and streams the head's K tiles (TMA, the same layout) and
// V^T tiles (one bulk copy each, pre-packed by pack_vt_kernel) through a two-stage ring; it runs ahead into the next
// item while the consumers finish the current one. Each consumer warpgroup owns 64 of the 128 query rows:
// S = Q K^T from shared memory (8 wgmma m64n128k16), the online softmax in registers (base 2, the softmax scale
// folded into the exponent), then O += P V with P as the register A operand (the S accumulator layout of two n8
// tiles is the A fragment of one k16 step, as in the mma.sync kernel). The output is staged in the warpgroup's own
// rows of the Q buffer and leaves as 16-byte row segments, bf16 or (for the o-projection) int8 with one scale per
// 128-channel group. Numerics match attention.cu's kernel up to accumulation order: fp32 scores and sums, P rounded
// to bf16 for P V. Tiles and why: attention_sm90_config.h.
#include "cuda/attention_sm90.h"

#include <cmath>
#include <cstdlib>

#include "cuda/act_int8.cuh"
#include "cuda/attention_sm90_config.h"
#include "cuda/cuda_common.cuh"
#include "cuda/sla_mma.cuh"
#include "cuda/sla_wgmma.cuh"
#include "cuda/sm90_sync.cuh"
#include "cuda/tensor_map.h"

namespace td {
namespace cuda {

namespace {

using namespace attn90;
using bf16 = __nv_bfloat16;
using sla::ex2_ftz;
using sla::fence_operands;
using sla::pack_bf16;
using sla::quad_max;
using sla::quad_sum;
using sla::wgmma_commit;
using sla::wgmma_desc_sw128;
using sla::wgmma_fence;
using sla::wgmma_wait0;

static_assert(kHeadDim == 128 && kBlockM == 128 && kBlockN == 128, "the tile layouts below assume 128");
constexpr int kVtElems = kVBytes / 2;  // one packed V^T tile

struct KernelArgs {
  DenseAttnArgs a;
  const bf16* vt;  // [heads][key tiles][2 halves][128 d][64 keys], 16-byte chunks swizzled
  int nqt, nkt;    // query tiles, key tiles
};

// V^T tiles in the K-major layout the P·V wgmma reads: tile (kt, h) is two halves (keys 0-63, 64-127 of the tile),
// each [128 d rows][64 keys = 128 bytes] with 16-byte chunk c of row d at c ^ (d & 7); keys past lk are zero. One
// bulk copy then lands a whole tile. A CTA transposes one tile through shared memory.
__global__ void __launch_bounds__(256) pack_vt_kernel(const bf16* __restrict__ v, int64_t v_tok, int64_t v_head,
                                                      int lk, int nkt, bf16* __restrict__ vt) {
  __shared__ __align__(16) bf16 tile[kBlockN][kHeadDim + 8];
  const int kt = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, k0 = kt * kBlockN;
  for (int idx = tid; idx < kBlockN * (kHeadDim / 8); idx += 256) {
    const int r = idx / (kHeadDim / 8), c = idx % (kHeadDim / 8);
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (k0 + r < lk) val = *reinterpret_cast<const uint4*>(v + int64_t(k0 + r) * v_tok + int64_t(h) * v_head + c * 8);
    *reinterpret_cast<uint4*>(&tile[r][c * 8]) = val;
  }
  __syncthreads();
  bf16* dst = vt + (int64_t(h) * nkt + kt) * kVtElems;
  for (int idx = tid; idx < 2 * kHeadDim * 8; idx += 256) {
    const int c = idx % 8, d = (idx / 8) % kHeadDim, half = idx / (8 * kHeadDim);
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int key = half * 64 + c * 8 + 2 * i;
      __nv_bfloat162 pr;
      pr.x = tile[key][d];
      pr.y = tile[key + 1][d];
      w[i] = *reinterpret_cast<const uint32_t*>(&pr);
    }
    *reinterpret_cast<uint4*>(dst + (half * kHeadDim + d) * 64 + ((c ^ (d & 7)) * 8)) =
        make_uint4(w[0], w[1], w[2], w[3]);
  }
}

__device__ __forceinline__ void wg_sync(int wg) { asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory"); }

__global__ void __launch_bounds__(kThreads, 1)
    attention_sm90_kernel(const __grid_constant__ CUtensorMap tmq, const __grid_constant__ CUtensorMap tmk,
                          const KernelArgs ka) {
  extern __shared__ __align__(128) uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024u - (sm90::smem_addr(smem_raw) & 1023u)) & 1023u);
  uint8_t* sq = smem;                         // kQBuffers x Q tile
  uint8_t* sk = sq + kQBuffers * kQBytes;     // kStages x K tile
  uint8_t* sv = sk + kStages * kKBytes;       // kStages x V^T tile
  __shared__ __align__(8) uint64_t qfull[kQBuffers], qempty[kQBuffers], kvfull[kStages], kvempty[kStages];
  const DenseAttnArgs& a = ka.a;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int items = ka.nqt * a.heads;
  constexpr int kReleases = kConsumers * 4;  // one arrival per consumer warp
  if (tid == 0) {
    sm90::init_ring(qfull, qempty, 1, kReleases);
    sm90::init_ring(kvfull, kvempty, 1, kReleases);
  }
  __syncthreads();

  if (warp >= kConsumers * 4) {  // the producer warpgroup: one thread issues every load
    sm90::setmaxnreg_dec<kProducerRegs>();
    if (tid != kConsumers * 128) return;
    uint32_t qi = 0, kvi = 0;
    for (int item = blockIdx.x; item < items; item += gridDim.x, qi++) {
      const int h = item / ka.nqt, q0 = (item - h * ka.nqt) * kBlockM;
      const int qb = qi % kQBuffers;
      const uint32_t qf = sm90::smem_addr(&qfull[qb]);
      sm90::mbar_wait(sm90::smem_addr(&qempty[qb]), ((qi / kQBuffers) & 1) ^ 1);
      sm90::mbar_expect_tx(qf, kQBytes);
      sm90::tma_load_3d(sm90::smem_addr(sq + qb * kQBytes), &tmq, qf, 0, h, q0);
      sm90::tma_load_3d(sm90::smem_addr(sq + qb * kQBytes + kHalfBytes), &tmq, qf, 64, h, q0);
      for (int kt = 0; kt < ka.nkt; kt++, kvi++) {
        const int s = kvi % kStages;
        const uint32_t kf = sm90::smem_addr(&kvfull[s]);
        sm90::mbar_wait(sm90::smem_addr(&kvempty[s]), ((kvi / kStages) & 1) ^ 1);
        sm90::mbar_expect_tx(kf, kKBytes + kVBytes);
        sm90::tma_load_3d(sm90::smem_addr(sk + s * kKBytes), &tmk, kf, 0, h, kt * kBlockN);
        sm90::tma_load_3d(sm90::smem_addr(sk + s * kKBytes + kHalfBytes), &tmk, kf, 64, h, kt * kBlockN);
        sm90::bulk_copy_g2s(sm90::smem_addr(sv + s * kVBytes), ka.vt + (int64_t(h) * ka.nkt + kt) * kVtElems,
                            kVBytes, kf);
      }
    }
    return;
  }

  // ---- consumers: warpgroup wg owns rows wg * 64 .. + 63 of each query tile ----
  sm90::setmaxnreg_inc<kConsumerRegs>();
  const int wg = warp / 4, g = lane / 4, t4 = lane % 4;
  const int lrow0 = wg * 64 + (warp % 4) * 16 + g;  // this thread's rows in the tile: lrow0 and lrow0 + 8
  constexpr uint64_t kHalfDesc = kHalfBytes >> 4;     // descriptor units (16 bytes) between two halves
  const uint64_t dq0 = wgmma_desc_sw128(sm90::smem_addr(sq)) + ((wg * 64 * 128) >> 4);
  const uint64_t dk0 = wgmma_desc_sw128(sm90::smem_addr(sk)), dv0 = wgmma_desc_sw128(sm90::smem_addr(sv));
  const bool quant = a.oq != nullptr;
  uint32_t qi = 0, kvi = 0;
  for (int item = blockIdx.x; item < items; item += gridDim.x, qi++) {
    const int h = item / ka.nqt, q0 = (item - h * ka.nqt) * kBlockM;
    const int qb = qi % kQBuffers;
    sm90::mbar_wait(sm90::smem_addr(&qfull[qb]), (qi / kQBuffers) & 1);
    const uint64_t dq = dq0 + ((qb * kQBytes) >> 4);
    float o[64];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.f, 0.f};

    for (int kt = 0; kt < ka.nkt; kt++, kvi++) {
      const int s = kvi % kStages;
      sm90::mbar_wait(sm90::smem_addr(&kvfull[s]), (kvi / kStages) & 1);
      const uint64_t dk = dk0 + ((s * kKBytes) >> 4), dv = dv0 + ((s * kVBytes) >> 4);
      float sc[64];
      wgmma_fence();
      sla::wgmma_m64n128k16_bf16_ss_t<0>(sc, dq, dk);
#pragma unroll
      for (int ks = 1; ks < kHeadDim / 16; ks++) {
        const uint64_t off = (ks / 4) * kHalfDesc + (ks % 4) * 2;
        sla::wgmma_m64n128k16_bf16_ss_t<1>(sc, dq + off, dk + off);
      }
      wgmma_commit();
      wgmma_wait0();
      fence_operands(sc);

      const int kbase = kt * kBlockN;
      if (kbase + kBlockN > a.lk) {  // keys past lk (the last tile only) take no probability mass
#pragma unroll
        for (int j = 0; j < 16; j++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            if (kbase + 8 * j + 2 * t4 + (e & 1) >= a.lk) sc[4 * j + e] = -INFINITY;
      }
      float alpha[2];
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 16; j++) mx = fmaxf(mx, fmaxf(sc[4 * j + 2 * r], sc[4 * j + 2 * r + 1]));
        // Every tile holds a real key, so the new maximum is finite; alpha = 0 on the first tile.
        const float mn = fmaxf(m_r[r], quad_max(mx) * a.scale_log2);
        alpha[r] = ex2_ftz(m_r[r] - mn);
        m_r[r] = mn;
      }
      uint32_t pa[kBlockN / 16][4];
      float ls[2] = {0.f, 0.f};
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ks++) {
        float p[8];
#pragma unroll
        for (int i = 0; i < 8; i++) {
          const int r = (i / 2) & 1;  // values 8ks + {0,1,4,5} are row g, {2,3,6,7} row g + 8
          p[i] = ex2_ftz(fmaf(sc[8 * ks + i], a.scale_log2, -m_r[r]));
          ls[r] += p[i];
        }
        pa[ks][0] = pack_bf16(p[0], p[1]);
        pa[ks][1] = pack_bf16(p[2], p[3]);
        pa[ks][2] = pack_bf16(p[4], p[5]);
        pa[ks][3] = pack_bf16(p[6], p[7]);
      }
#pragma unroll
      for (int r = 0; r < 2; r++) l_r[r] = fmaf(l_r[r], alpha[r], ls[r]);
#pragma unroll
      for (int i = 0; i < 64; i++) o[i] *= alpha[(i / 2) & 1];

      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ks++)
        sla::wgmma_m64n128k16_bf16_rs(o, pa[ks], dv + (ks / 4) * kHalfDesc + (ks % 4) * 2);
      wgmma_commit();
      wgmma_wait0();
      fence_operands(o);
      if (lane == 0) sm90::mbar_arrive(sm90::smem_addr(&kvempty[s]));
    }

    // ---- epilogue: normalise, stage in this warpgroup's rows of the Q buffer, 16-byte stores ----
    uint8_t* stage = sq + qb * kQBytes;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) inv[r] = 1.f / quad_sum(l_r[r]);
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int lr = lrow0 + 8 * r, row = q0 + lr;
      if (quant) {
        float amax = 0.f;
#pragma unroll
        for (int j = 0; j < 16; j++) amax = fmaxf(amax, fmaxf(fabsf(o[4 * j + 2 * r]), fabsf(o[4 * j + 2 * r + 1])));
        amax = fmaxf(quad_max(amax) * inv[r], 1e-8f);
        const float qinv = act_int8_inv(amax) * inv[r];
        uint8_t* srow = stage + lr * 128;  // int8 rows: 128 bytes, half 0 only
#pragma unroll
        for (int j = 0; j < 16; j++)
          *reinterpret_cast<uint16_t*>(srow + (((j / 2) ^ (lr & 7)) << 4) + (j % 2) * 8 + 2 * t4) =
              act_int8_pack2(o[4 * j + 2 * r], o[4 * j + 2 * r + 1], qinv);
        if (t4 == 0 && row < a.lq) a.oscale[int64_t(row) * a.heads + h] = act_int8_scale(amax);
      } else {
#pragma unroll
        for (int j = 0; j < 16; j++)
          *reinterpret_cast<uint32_t*>(stage + (j / 8) * kHalfBytes + lr * 128 + (((j % 8) ^ (lr & 7)) << 4) +
                                       4 * t4) = pack_bf16(o[4 * j + 2 * r] * inv[r], o[4 * j + 2 * r + 1] * inv[r]);
      }
    }
    wg_sync(wg);
    const int wtid = tid % 128;
    if (quant) {
      for (int idx = wtid; idx < 64 * 8; idx += 128) {
        const int lr = wg * 64 + idx / 8, c = idx % 8, row = q0 + lr;
        if (row >= a.lq) continue;
        const uint4 val = *reinterpret_cast<const uint4*>(stage + lr * 128 + ((c ^ (lr & 7)) << 4));
        *reinterpret_cast<uint4*>(a.oq + (int64_t(row) * a.heads + h) * kHeadDim + c * 16) = val;
      }
    } else {
      for (int idx = wtid; idx < 64 * 16; idx += 128) {
        const int lr = wg * 64 + idx / 16, c16 = idx % 16, row = q0 + lr;
        if (row >= a.lq) continue;
        const uint4 val =
            *reinterpret_cast<const uint4*>(stage + (c16 / 8) * kHalfBytes + lr * 128 + (((c16 % 8) ^ (lr & 7)) << 4));
        *reinterpret_cast<uint4*>(a.o + int64_t(row) * a.o_tok + int64_t(h) * a.o_head + c16 * 8) = val;
      }
    }
    // The next TMA into this buffer (async proxy) comes after these generic accesses.
    sla::fence_proxy_async_smem();
    wg_sync(wg);
    if (lane == 0) sm90::mbar_arrive(sm90::smem_addr(&qempty[qb]));
  }
}

// [tokens, heads, 128] bf16 with token / head strides (elements): boxes of 64 channels x 1 head x `rows` tokens with
// the 128-byte swizzle (the K-major wgmma layout of one 64-wide half); tokens past the end read as zeros.
CUtensorMap head_map(const bf16* p, int64_t tokens, int heads, int64_t tok, int64_t head, int rows, const char* what) {
  const uint64_t dims[3] = {uint64_t(kHeadDim), uint64_t(heads), uint64_t(tokens)};
  const uint64_t strides[2] = {uint64_t(head) * 2, uint64_t(tok) * 2};
  const uint32_t box[3] = {64, 1, uint32_t(rows)};
  return encode_tensor_map(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, p, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B,
                           what);
}

}  // namespace

bool attention_sm90_applies(int head_dim) {
  static const bool on = [] {
    const char* e = std::getenv("TD_ATTENTION_SM90");
    return !(e && e[0] == '0');
  }();
  return on && head_dim == kHeadDim && cc() == 90;
}

void attention_sm90(const DenseAttnArgs& a) {
  TD_CHECK(a.lq >= 1 && a.lk >= 1 && a.heads >= 1, "attention", "empty attention on the Hopper kernel");
  KernelArgs ka;
  ka.a = a;
  ka.nqt = int(ceil_div(a.lq, kBlockM));
  ka.nkt = int(ceil_div(a.lk, kBlockN));
  Tensor vt = Tensor::empty({int64_t(a.heads) * ka.nkt * kVtElems}, DType::BF16, Device::CUDA);
  pack_vt_kernel<<<dim3(ka.nkt, a.heads), 256, 0, stream()>>>(a.v, a.v_tok, a.v_head, a.lk, ka.nkt,
                                                               vt.ptr<bf16>());
  TD_CUDA_LAUNCH_CHECK();
  ka.vt = vt.ptr<bf16>();
  const CUtensorMap tmq = head_map(a.q, a.lq, a.heads, a.q_tok, a.q_head, kBlockM, "attention q");
  const CUtensorMap tmk = head_map(a.k, a.lk, a.heads, a.k_tok, a.k_head, kBlockN, "attention k");
  static const bool configured = [] {
    TD_CUDA_CHECK(cudaFuncSetAttribute(attention_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kSmemBytes));
    return true;
  }();
  (void)configured;
  const int items = ka.nqt * a.heads;
  const int grid = std::min(items, sm_count());
  attention_sm90_kernel<<<grid, kThreads, kSmemBytes, stream()>>>(tmq, tmk, ka);
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace td
