// The VAE's wide 2-D convs on sm_90a (see conv2d_wgmma_config.h): an implicit-GEMM 3x3 or 2x2 conv with padding 1
// over x [n, H, W, CP] (a frame ring, or the input of a sub-pixel up-sampling conv), M = pixels, N = O,
// K = KS * KS * CP, bf16 in, fp32 accumulation.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/allocator.h"
#include "cuda/conv2d_wgmma_config.h"
#include "cuda/conv2d_wgmma.h"
#include "cuda/cuda_common.cuh"
#include "cuda/sla_wgmma.cuh"
#include "cuda/sm90_sync.cuh"

namespace td {
namespace cuda {
namespace {

using namespace conv2d_wgmma_config;
using sla::fence_operands;
using sla::fence_proxy_async_smem;
using sla::wgmma_commit;
using sla::wgmma_fence;
using sla::wgmma_wait;
using namespace sm90;

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TD_RING_SM90 1
#endif

#ifdef TD_RING_SM90
// Unswizzled K-major matrix descriptor: 8-row x 16-byte core matrices, `sbo` bytes between 8-row groups (M/N),
// `lbo` bytes between the 8-element groups along K.
__device__ __forceinline__ uint64_t desc_plain(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

// d[48] += A(64x16, smem desc) . B(96x16, smem desc)^T, bf16 in, fp32 accumulators.
__device__ __forceinline__ void wgmma_m64n96k16_bf16(float (&d)[48], uint64_t da, uint64_t db) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,"
      "%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47"
      "}, %48, %49, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
      : "l"(da), "l"(db));
}
// d[96] += A(64x16, smem desc) . B(192x16, smem desc)^T, bf16 in, fp32 accumulators.
__device__ __forceinline__ void wgmma_m64n192k16_bf16(float (&d)[96], uint64_t da, uint64_t db) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,"
      "%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,"
      "%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,"
      "%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95"
      "}, %96, %97, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]),
        "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]),
        "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]),
        "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]),
        "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
      : "l"(da), "l"(db));
}

// One warp's 16 residual pixels (x from xw) x 96 outputs (from column 96 hb) of row gy of frame yfr (pixel stride O)
// into its epilogue scratch with cp.async (zero-filled outside the frame), as one commit group: no registers held,
// and all six 16-byte pieces per lane in flight at once.
__device__ __forceinline__ void load_residual(uint32_t scr, const __nv_bfloat16* yfr, int O, int Wo, int Ho, int gy,
                                              int xw, int hb, int lane) {
#pragma unroll 1  // asynchronous copies: nothing to overlap by unrolling, and the registers are scarce here
  for (int k = 0; k < 6; k++) {
    const int i = lane + 32 * k, px = i / 12, ch = i - px * 12, x = xw + px;
    const bool in = gy < Ho && x < Wo;
    cp_async16(scr + px * kScratchRow + ch * 16, yfr + (in ? (size_t(gy) * Wo + x) * O + hb * 96 + ch * 8 : 0),
               in ? 16 : 0);
  }
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int NT>
__device__ __forceinline__ void wgmma_row(float (&d)[NT / 2], uint64_t da, uint64_t db) {
  if constexpr (NT == 96)
    wgmma_m64n96k16_bf16(d, da, db);
  else
    wgmma_m64n192k16_bf16(d, da, db);
}

__device__ __forceinline__ void stmatrix_x4(uint32_t addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

__device__ __forceinline__ uint4 ld_shared_v4(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

#endif

// The weights in stage order: [O / NT][kt * C / kRingChunk][taps][kRingChunk / 8][NT][8] from w [O, kt, KS, KS, C]
// (stage c = time tap dt, channel chunk cc), so one stage's weights are one contiguous bulk copy already in the
// unswizzled K-major layout.
__global__ void pack_conv_weights_kernel(const uint4* __restrict__ w, uint4* __restrict__ out, int O, int NT, int kt,
                                         int taps, int C) {
  constexpr int G = kRingChunk / 8;
  const int64_t pieces = int64_t(O) * kt * taps * (C / 8);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pieces; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t q = i;
    const int nl = int(q % NT);
    q /= NT;
    const int kg = int(q % G);
    q /= G;
    const int tap = int(q % taps);
    q /= taps;
    const int cpf = C / kRingChunk, chunks = kt * cpf, c = int(q % chunks), nb = int(q / chunks);
    const int n = nb * NT + nl, dt = c / cpf, cc = c - dt * cpf;
    out[i] = w[((int64_t(n) * kt + dt) * taps + tap) * (C / 8) + cc * G + kg];
  }
}

struct ConvArgs {
  const __nv_bfloat16* x;  // [n, H, W, C]
  // kt = 3: causal time taps; output frame f reads frame f - 2 + dt for tap dt: x[k] for k >= 0, hist[cf + k] for
  // -cf <= k < 0, zeros before that. kt = 1: frame f.
  const __nv_bfloat16* hist;  // [cf, H, W, C] or null
  const __nv_bfloat16* wpack;
  const float* bias;       // [O] or null
  __nv_bfloat16* y;        // [n, Ho, Wo, O], Ho = H + 3 - KS
  int n, cf, kt, H, W, C, Ho, Wo, O;
  // Fused VAE RMS norm (NT == O): writes silu(u / max(|u|, 1e-12) * sqrt(O) * gamma), u = conv + bias, into channels
  // [norm_off, norm_off + O) of norm_out [n, Ho, Wo, norm_ch] (the next conv's frame ring); y only as below.
  const float* gamma;
  __nv_bfloat16* norm_out;
  int norm_ch, norm_off;
  // With the fused norm and accumulate: y += conv + bias is stored too (the residual sum) and the norm takes it plus
  // norm_bias ([O] or null).
  const float* norm_bias;
};

// Persistent over tiles (frame, R output rows x kRingTileW pixels, NT outputs), so the producer loads the next tile
// while the consumers run the last one's epilogue. Tiles with the same pixels and different output blocks are
// adjacent (the second reads the halo from L2).
// kEpi: 0 plain, 1 fused norm, 2 fused norm after the residual add (see ConvArgs), 3 plain with the sub-pixel phase
// shuffle (y [n, 2 (Ho - 1), 2 (Wo - 1), O / 4]), 4 plain accumulating into y.
template <int KS, int NT, int RW, int S, int kEpi>
__global__ void __launch_bounds__(kRingThreads, 1) conv2d_wgmma_kernel(const __grid_constant__ ConvArgs a) {
#ifdef TD_RING_SM90
  constexpr int R = kRingConsumers * RW, T = KS * KS;
  constexpr int HR = R + KS - 1, HW = kRingTileW + KS - 1;
  constexpr int kGroups = kRingChunk / 8;
  constexpr int kAPlane = HR * HW * 16;  // one 8-channel group of the halo: pixel (r, px) at (r * HW + px) * 16
  constexpr int kABytes = kGroups * kAPlane;
  constexpr int kWPlane = NT * 16;  // one tap's 8-channel group of the NT weight rows
  constexpr int kWBytes = T * kGroups * kWPlane;
  constexpr int kStageBytes = kABytes + kWBytes;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t full_bar[S], empty_bar[S];
  const uint32_t base = (smem_addr(smem_raw) + 127u) & ~127u;
  const int tid = threadIdx.x, wg = tid >> 7;
  const int cpf = a.C / kRingChunk, chunks = a.kt * cpf, nblocks = a.O / NT;
  const size_t frame = size_t(a.H) * a.W * a.C;
  const int tiles_x = (a.Wo + kRingTileW - 1) / kRingTileW, tiles_xy = tiles_x * ((a.Ho + R - 1) / R);
  const int tiles = tiles_xy * nblocks * a.n;
  // Full: every producer thread's cp.async + the weights' expect_tx; empty: every consumer warp.
  if (tid == 0) init_ring(full_bar, empty_bar, 128 + 1, 4 * kRingConsumers);
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<kRingProducerRegs>();
    int stage = 0;
    uint32_t phase = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int nb = tile % nblocks, pt = (tile / nblocks) % tiles_xy, f = tile / (nblocks * tiles_xy);
      const int x0 = (pt % tiles_x) * kRingTileW, h0 = (pt / tiles_x) * R;
      const char* wsrc = reinterpret_cast<const char*>(a.wpack) + size_t(nb) * chunks * kWBytes;
      for (int c = 0; c < chunks; c++) {
        const int dt = c / cpf, k = f - (a.kt - 1) + dt;
        const __nv_bfloat16* xf = k >= 0 ? a.x + k * frame : a.cf + k >= 0 ? a.hist + (a.cf + k) * frame : nullptr;
        mbar_wait(smem_addr(&empty_bar[stage]), phase ^ 1);
        const uint32_t sa = base + stage * kStageBytes, fb = smem_addr(&full_bar[stage]);
        if (tid == 0) {
          mbar_expect_tx(fb, kWBytes);
          sm90::bulk_copy_g2s(sa + kABytes, wsrc + size_t(c) * kWBytes, kWBytes, fb);
        }
        // Thread pairs take the two 16-byte halves of one pixel's 32-byte channel slice (one global sector); the
        // conv's zero padding (1 pixel on every side) is cp.async's zero fill.
        const __nv_bfloat16* xc = xf ? xf + (c - dt * cpf) * kRingChunk : a.x;  // no frame: all zero-fill
        for (int i = tid; i < HR * HW * kGroups; i += 128) {
          const int kg = i % kGroups, p = i / kGroups, r = p / HW, px = p - r * HW;
          const int gy = h0 - 1 + r, gx = x0 - 1 + px;
          const bool in = xf && gy >= 0 && gy < a.H && gx >= 0 && gx < a.W;
          const __nv_bfloat16* src = xc + (in ? (size_t(gy) * a.W + gx) * a.C : 0) + kg * 8;
          cp_async16(sa + kg * kAPlane + p * 16, src, in ? 16 : 0);
        }
        mbar_arrive_cp_async(fb);
        if (++stage == S) stage = 0, phase ^= 1;
      }
    }
  } else {
    setmaxnreg_inc<kRingConsumerRegs>();
    const int cw = __shfl_sync(0xffffffffu, wg - 1, 0), warp = (tid >> 5) & 3, lane = tid & 31;
    const int t = lane & 3;
    int stage = 0, prev = 0;
    uint32_t phase = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int nb = tile % nblocks, pt = (tile / nblocks) % tiles_xy, f = tile / (nblocks * tiles_xy);
      const int x0 = (pt % tiles_x) * kRingTileW, h0 = (pt / tiles_x) * R;
      float acc[RW][NT / 2];
#pragma unroll
      for (int rr = 0; rr < RW; rr++)
#pragma unroll
        for (int i = 0; i < NT / 2; i++) acc[rr][i] = 0.f;
      for (int c = 0; c < chunks; c++) {
        mbar_wait(smem_addr(&full_bar[stage]), phase);
        fence_proxy_async_smem();  // cp.async wrote the halo through the generic proxy; wgmma reads it async
        const uint32_t sa = base + stage * kStageBytes, sw = sa + kABytes;
        wgmma_fence();
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
#pragma unroll
          for (int tap = 0; tap < T; tap++) {
            const int dy = tap / KS, dx = tap - dy * KS;
            const uint64_t da = desc_plain(sa + ((cw * RW + rr + dy) * HW + dx) * 16, kAPlane, 128);
            const uint64_t db = desc_plain(sw + tap * kGroups * kWPlane, kWPlane, 128);
            wgmma_row<NT>(acc[rr], da, db);
          }
        }
        wgmma_commit();
        // Keep this chunk's MMAs in flight; the previous chunk's are done, so its stage goes back to the producer.
        wgmma_wait<1>();
        if (c > 0 && lane == 0) mbar_arrive(smem_addr(&empty_bar[prev]));
        prev = stage;
        if (++stage == S) stage = 0, phase ^= 1;
      }
      wgmma_wait<0>();
#pragma unroll
      for (int rr = 0; rr < RW; rr++) fence_operands(acc[rr]);
      if (lane == 0) mbar_arrive(smem_addr(&empty_bar[prev]));

      // Accumulator layout of m64nNk16: register 4j+{0,1} = (row g, cols 8j+2t, +1), 4j+{2,3} = (row g+8, same
      // cols); rows are output pixels x0 + row.
      const float* bp = a.bias ? a.bias + nb * NT : nullptr;
      // The epilogue goes through shared memory: each warp's 16 pixels x 96 outputs go out with stmatrix (bf16) and
      // come back as 16-byte pieces, so global stores and loads are whole contiguous pixel runs instead of 4-byte
      // pieces scattered over 16 pixels (ncu: the scattered epilogue took ~20% of the consumers' time with the tensor
      // pipe idle). Lane l addresses row (l & 7) + 8 ((l >> 3) & 1) of 8-column block (l >> 4) of an x4 matrix set.
      const uint32_t scr = base + S * kStageBytes + (cw * 4 + warp) * kScratchWarp;
      __nv_bfloat16* yfr = a.y ? a.y + size_t(f) * a.Ho * a.Wo * a.O + nb * NT : nullptr;
      const uint32_t lane_mat = scr + ((lane & 7) + ((lane >> 3) & 1) * 8) * kScratchRow + (lane >> 4) * 16;
      // Writes one output row: value(j, hf, v0, v1) of each accumulator pair (pixel g + 8 hf, cols 8j + 2t, +1) goes
      // to out (a frame, pixel stride `stride`).
      // With kEpi == 3 (sub-pixel shuffle) the run of 96 outputs from column c = nb NT + 96 hb of conv pixel (gy, x) is
      // phase p = c / Oc, Oc = O / 4 (a multiple of 96), of output pixel (2 gy - p / 2, 2 x - p % 2) of the
      // [2 (Ho - 1), 2 (Wo - 1), Oc] frame, if inside it (see cpu/vae_resample.h).
      auto put = [&](int gy, const float (&u)[NT / 2], __nv_bfloat16* out, int stride, auto value) {
#pragma unroll
        for (int hb = 0; hb < NT / 96; hb++) {
#pragma unroll
          for (int jj = 0; jj < 12; jj += 2) {
            uint32_t r[4];
#pragma unroll
            for (int m = 0; m < 4; m++) {
              const int j = hb * 12 + jj + (m >> 1), hf = m & 1;
              float v0 = u[4 * j + 2 * hf], v1 = u[4 * j + 2 * hf + 1];
              value(j, hf, v0, v1);
              const __nv_bfloat162 b2 = __floats2bfloat162_rn(v0, v1);
              r[m] = *reinterpret_cast<const uint32_t*>(&b2);
            }
            stmatrix_x4(lane_mat + jj * 16, r);
          }
          __syncwarp();
#pragma unroll 2  // all 6 in flight would need registers the accumulators hold (spills)
          for (int k = 0; k < 6; k++) {
            const int i = lane + 32 * k, px = i / 12, ch = i - px * 12;
            const int x = x0 + warp * 16 + px;
            uint4 v = ld_shared_v4(scr + px * kScratchRow + ch * 16);
            if constexpr (kEpi == 3) {
              const int Oc = a.O / 4, c = nb * NT + hb * 96, ph = c / Oc, yy = 2 * gy - (ph >> 1), xx = 2 * x - (ph & 1);
              const int H2 = 2 * (a.Ho - 1), W2 = 2 * (a.Wo - 1);
              if (yy >= 0 && yy < H2 && xx >= 0 && xx < W2)
                *reinterpret_cast<uint4*>(a.y + ((size_t(f) * H2 + yy) * W2 + xx) * Oc + (c - ph * Oc) + ch * 8) = v;
            } else if (x < a.Wo) {
              *reinterpret_cast<uint4*>(out + (size_t(gy) * a.Wo + x) * stride + hb * 96 + ch * 8) = v;
            }
          }
          __syncwarp();
        }
      };
      // u += one output row of y (frame yfr, pixel stride O) in fp32: 16-byte cp.async pieces into the scratch, then
      // ldmatrix (stmatrix's inverse) back into the accumulator layout.
      auto add_residual = [&](int gy, float (&u)[NT / 2]) {
#pragma unroll
        for (int hb = 0; hb < NT / 96; hb++) {
          load_residual(scr, yfr, a.O, a.Wo, a.Ho, gy, x0 + warp * 16, hb, lane);
          asm volatile("cp.async.wait_group 0;\n" ::: "memory");
          __syncwarp();
#pragma unroll
          for (int jj = 0; jj < 12; jj += 2) {
            uint32_t r[4];
            ldmatrix_x4(r, lane_mat + jj * 16);
#pragma unroll
            for (int m = 0; m < 4; m++) {
              const int j = hb * 12 + jj + (m >> 1), hf = m & 1;
              const float2 o = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&r[m]));
              u[4 * j + 2 * hf] += o.x, u[4 * j + 2 * hf + 1] += o.y;
            }
          }
          __syncwarp();
        }
      };
      if constexpr (kEpi == 1 || kEpi == 2) {
        // Fused norm (NT == O): u = conv + bias (+ y, stored back when accumulating: the residual sum, added in
        // fp32), then silu(v / max(|v|, 1e-12) * sqrt(O) * gamma), v = u + norm_bias, into the ring slot. A pixel's
        // outputs sit in the 4 lanes t = 0..3 of its row: a quad shuffle completes |v|^2. Fast reciprocals: a longer
        // epilogue here once pushed the main loop out of the instruction cache.
        __nv_bfloat16* nfr = a.norm_out + size_t(f) * a.Ho * a.Wo * a.norm_ch + a.norm_off;
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
          const int gy = h0 + cw * RW + rr;
          if (gy >= a.Ho) continue;
          float (&u)[NT / 2] = acc[rr];
          if (bp) {
#pragma unroll
            for (int j = 0; j < NT / 8; j++) {
              const float b0 = __ldg(bp + 8 * j + 2 * t), b1 = __ldg(bp + 8 * j + 2 * t + 1);
              u[4 * j] += b0, u[4 * j + 1] += b1, u[4 * j + 2] += b0, u[4 * j + 3] += b1;
            }
          }
          if constexpr (kEpi == 2) {
            add_residual(gy, u);
            put(gy, u, yfr, a.O, [](int, int, float&, float&) {});
          }
          float inv[2];
#pragma unroll
          for (int hf = 0; hf < 2; hf++) {
            float ss = 0.f;
#pragma unroll
            for (int j = 0; j < NT / 8; j++) {
              float& u0 = u[4 * j + 2 * hf];
              float& u1 = u[4 * j + 2 * hf + 1];
              if (kEpi == 2 && a.norm_bias)
                u0 += __ldg(a.norm_bias + 8 * j + 2 * t), u1 += __ldg(a.norm_bias + 8 * j + 2 * t + 1);
              ss = fmaf(u0, u0, fmaf(u1, u1, ss));
            }
            ss += __shfl_xor_sync(0xffffffffu, ss, 1);
            ss += __shfl_xor_sync(0xffffffffu, ss, 2);
            inv[hf] = sqrtf(float(NT)) * rsqrtf(fmaxf(ss, 1e-24f));
          }
          put(gy, u, nfr, a.norm_ch, [&](int j, int hf, float& v0, float& v1) {
            const float2 gm = *reinterpret_cast<const float2*>(a.gamma + 8 * j + 2 * t);
            v0 *= inv[hf] * gm.x, v1 *= inv[hf] * gm.y;
            v0 = __fdividef(v0, 1.f + __expf(-v0)), v1 = __fdividef(v1, 1.f + __expf(-v1));
          });
        }
      } else {
        // Plain: y = conv + bias; kEpi 4 (accumulate): y += conv + bias, summed in fp32.
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
          const int gy = h0 + cw * RW + rr;
          if (gy >= a.Ho) continue;
          if constexpr (kEpi == 4) add_residual(gy, acc[rr]);
          put(gy, acc[rr], yfr, a.O, [&](int j, int, float& v0, float& v1) {
            if (bp) v0 += __ldg(bp + 8 * j + 2 * t), v1 += __ldg(bp + 8 * j + 2 * t + 1);
          });
        }
      }
    }
  }
#else
  __trap();  // never launched: the host checks conv2d_wgmma_available()
#endif
}

template <int KS, int NT, int RW, int S>
constexpr int conv_smem_bytes() {
  constexpr int R = kRingConsumers * RW;
  constexpr int stage = (kRingChunk / 8) * 16 * ((R + KS - 1) * (kRingTileW + KS - 1) + KS * KS * NT);
  return S * stage + kRingConsumers * 4 * kScratchWarp + 128;  // + the epilogue scratch + alignment slack
}

template <int KS, int NT, int RW, int S, int kEpi>
void launch_conv(const Tensor* hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
                 const ConvNormOut* norm) {
  auto kernel = conv2d_wgmma_kernel<KS, NT, RW, S, kEpi>;
  constexpr int smem = conv_smem_bytes<KS, NT, RW, S>();
  static_assert(smem <= 227 * 1024, "conv stages exceed shared memory");
  static bool configured = false;
  if (!configured) {
    TD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    configured = true;
  }
  ConvArgs a{};
  a.n = int(x.size(0)), a.H = int(x.size(1)), a.W = int(x.size(2)), a.C = int(x.size(3));
  a.O = int(w.size(0)), a.kt = int(w.size(1)), a.Ho = a.H + 3 - KS, a.Wo = a.W + 3 - KS;
  if (hist && hist->defined()) a.hist = hist->ptr<__nv_bfloat16>(), a.cf = int(hist->size(0));
  // Packed per call (a few microseconds next to the conv): the weights are views the model may own in any layout.
  Tensor wpack = Tensor::empty({w.numel()}, DType::BF16, Device::CUDA);
  const int64_t pieces = w.numel() / 8;
  pack_conv_weights_kernel<<<unsigned(std::min<int64_t>((pieces + 255) / 256, 4096)), 256, 0, stream()>>>(
      static_cast<const uint4*>(w.data()), static_cast<uint4*>(wpack.data()), a.O, NT, a.kt, KS * KS, a.C);
  TD_CUDA_LAUNCH_CHECK();
  a.x = x.ptr<__nv_bfloat16>(), a.wpack = wpack.ptr<__nv_bfloat16>(), a.y = y ? y->ptr<__nv_bfloat16>() : nullptr;
  if (norm) {
    a.gamma = norm->gamma->ptr<float>(), a.norm_out = norm->out->ptr<__nv_bfloat16>();
    a.norm_ch = int(norm->out->size(3)), a.norm_off = norm->offset;
    a.norm_bias = norm->pre_bias ? norm->pre_bias->ptr<float>() : nullptr;
  }
  a.bias = bias ? bias->ptr<float>() : nullptr;
  constexpr int R = kRingConsumers * RW;
  const int64_t tiles = int64_t((a.Wo + kRingTileW - 1) / kRingTileW) * ((a.Ho + R - 1) / R) * (a.O / NT) * a.n;
  TD_CHECK(tiles < (int64_t(1) << 31), "conv2d_wgmma", "problem too large: ", shape_str(x.shape()));
  kernel<<<unsigned(std::min<int64_t>(tiles, sm_count())), kRingThreads, smem, stream()>>>(a);
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool conv2d_wgmma_available() {
  static int avail = -1;
  if (avail < 0) {
    avail = 0;
    if (cuda_available() && cc() == 90) {
      cudaFuncAttributes fa{};
      TD_CUDA_CHECK(cudaFuncGetAttributes(&fa, conv2d_wgmma_kernel<3, 96, 4, kRingStagesN96R8, 0>));
      avail = fa.binaryVersion == 90 ? 1 : 0;
    }
  }
  return avail == 1;
}

bool conv2d_wgmma_fits(int64_t CP, int64_t O, int64_t kh, int64_t kw) {
  return O > 0 && O % 96 == 0 && CP % kRingChunk == 0 && CP > 0 && kh == kw && (kh == 2 || kh == 3);
}

namespace {
template <int KS, int kEpi>
void launch_tile(RingTile tile, const Tensor* hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y,
                 const ConvNormOut* norm) {
  switch (tile) {
    case RingTile::N96R8:
      return launch_conv<KS, 96, 4, kRingStagesN96R8, kEpi>(hist, x, w, bias, y, norm);
    case RingTile::N96R4:
      return launch_conv<KS, 96, 2, kRingStagesN96R4, kEpi>(hist, x, w, bias, y, norm);
    case RingTile::N192R4:
      return launch_conv<KS, 192, 2, kRingStagesN192R4, kEpi>(hist, x, w, bias, y, norm);
  }
}

// The checks and the tile choice shared by conv2d_wgmma and conv2d_wgmma_norm; y or norm (one of them) is the output.
void run_conv(const Tensor* hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y, bool accumulate,
              const ConvNormOut* norm, const char* tile_name, bool shuffle = false) {
  TD_CHECK(x.dim() == 4 && w.dim() == 5 && (w.size(1) == 1 || (w.size(1) == 3 && w.size(2) == 3)) &&
               w.size(4) == x.size(3),
           "conv2d_wgmma", "expected x [n, H, W, C] and w [O, 1, k, k, C] or [O, 3, 3, 3, C], got ",
           shape_str(x.shape()), ", ", shape_str(w.shape()));
  if (hist && hist->defined())
    TD_CHECK(hist->dim() == 4 && hist->size(0) <= 2 && hist->size(1) == x.size(1) && hist->size(2) == x.size(2) &&
                 hist->size(3) == x.size(3) && hist->dtype() == DType::BF16 && hist->is_contiguous() &&
                 hist->is_cuda(),
             "conv3d_wgmma", "history ", shape_str(hist->shape()), " does not match input ", shape_str(x.shape()));
  const int64_t O = w.size(0), CP = x.size(3), KS = w.size(2);
  TD_CHECK(conv2d_wgmma_fits(CP, O, KS, w.size(3)) && conv2d_wgmma_available(), "conv2d_wgmma",
           "needs an sm_90a build on an sm_90 GPU, O a multiple of 96, C of 16 and a 2x2 or 3x3 kernel, got w ",
           shape_str(w.shape()));
  const Shape out{x.size(0), x.size(1) + 3 - KS, x.size(2) + 3 - KS, O};
  if (shuffle) {
    TD_CHECK(KS == 2 && O % 384 == 0 && !accumulate && y, "conv2d_wgmma_subpixel",
             "expected a 2x2 conv with O a multiple of 384 (4 phases of a multiple of 96), got w ", shape_str(w.shape()));
    expect_shape(*y, Shape{x.size(0), 2 * x.size(1), 2 * x.size(2), O / 4}, "conv2d_wgmma_subpixel output");
  } else if (y) {
    expect_shape(*y, out, "conv2d_wgmma output");
  }
  if (norm) {
    TD_CHECK(norm->gamma && norm->gamma->numel() == O && norm->gamma->dtype() == DType::F32 && norm->gamma->is_cuda(),
             "conv2d_wgmma_norm", "gamma must be ", O, " f32 values on the GPU");
    const Tensor& r = *norm->out;
    TD_CHECK(r.dim() == 4 && r.size(0) == out[0] && r.size(1) == out[1] && r.size(2) == out[2] &&
                 r.dtype() == DType::BF16 && r.is_cuda() && r.is_contiguous() && norm->offset >= 0 &&
                 norm->offset % 8 == 0 && norm->offset + O <= r.size(3),
             "conv2d_wgmma_norm", "output ", shape_str(r.shape()), " cannot take channels [", norm->offset, ", ",
             norm->offset + O, ") of a ", shape_str(out), " result");
    TD_CHECK(r.size(3) % 8 == 0, "conv2d_wgmma_norm", "output rows of ", r.size(3), " channels: not 16-byte pieces");
    if (norm->pre_bias)
      TD_CHECK(norm->pre_bias->is_cuda() && norm->pre_bias->dtype() == DType::F32 && norm->pre_bias->numel() == O,
               "conv2d_wgmma_norm pre-bias", "expected ", O, " f32 values on the GPU, got ",
               norm->pre_bias->describe());
  }
  TD_CHECK(x.numel() < (int64_t(1) << 40) && x.size(1) * x.size(2) < (int64_t(1) << 31), "conv2d_wgmma",
           "frame too large: ", shape_str(x.shape()));
  for (const Tensor* t : {&x, &w, static_cast<const Tensor*>(y)})
    if (t) TD_CHECK(t->is_cuda() && t->dtype() == DType::BF16 && t->is_contiguous(), "conv2d_wgmma",
                    "expected contiguous bf16 tensors on the GPU, got ", t->describe());
  if (bias) TD_CHECK(bias->is_cuda() && bias->dtype() == DType::F32 && bias->numel() == O, "conv2d_wgmma bias",
                     "expected ", O, " f32 values on the GPU, got ", bias->describe());
  // 16-byte cp.async / bulk copies of x, history and weights; 16-byte loads and stores of the outputs.
  auto aligned = [](const Tensor* t, uintptr_t a) { return !t || !t->defined() || uintptr_t(t->data()) % a == 0; };
  TD_CHECK(aligned(&x, 16) && aligned(hist, 16) && aligned(&w, 16) && aligned(y, 16) &&
               (!norm || aligned(norm->out, 16)),
           "conv2d_wgmma", "tensors must start 16-byte aligned: a view at an odd offset?");
  static const char* env3 = std::getenv("TD_VAE_RING_TILE");
  static const char* env2 = std::getenv("TD_VAE_SUBPIXEL_TILE");
  const char* name = tile_name && *tile_name ? tile_name : KS == 3 ? env3 : env2;
  RingTile tile = KS == 2 ? kSubpixelTile : O == 96 ? kRingTile96 : kRingTile192;
  const bool by_shape = !(name && *name);
  if (by_shape && KS == 3 && tile == RingTile::N192R4 && O % 192 == 0) {  // too few n192r4 tiles to fill the GPU
    const int64_t t192 = (out[2] + kRingTileW - 1) / kRingTileW * ((out[1] + 3) / 4) * (O / 192) * out[0];
    if (t192 < kSmallGridWaves * sm_count()) tile = RingTile::N96R4;
  }
  if (name && *name) {
    const std::string v = name;
    if (v == "n96r8")
      tile = RingTile::N96R8;
    else if (v == "n96r4")
      tile = RingTile::N96R4;
    else if (v == "n192r4")
      tile = RingTile::N192R4;
    else
      throw Error(KS == 3 ? "TD_VAE_RING_TILE" : "TD_VAE_SUBPIXEL_TILE",
                  cat("expected n96r8, n96r4 or n192r4, got '", v, "'"));
  }
  if (tile == RingTile::N192R4 && O % 192 != 0) tile = RingTile::N96R8;  // a default meant for wider convs
  if (norm) {  // all of a pixel's outputs in one tile; 3x3 only (conv2d_wgmma_norm's contract)
    TD_CHECK(O == 96 || O == 192, "conv2d_wgmma_norm", "the fused norm takes 96 or 192 outputs, got ", O);
    tile = O == 96 ? (tile == RingTile::N192R4 ? kRingTile96 : tile) : RingTile::N192R4;
    TD_CHECK(KS == 3, "conv2d_wgmma_norm", "the fused norm takes 3x3 convs");
    if (y)
      launch_tile<3, 2>(tile, hist, x, w, bias, y, norm);
    else
      launch_tile<3, 1>(tile, hist, x, w, bias, y, norm);
  } else if (KS == 3) {
    if (accumulate)
      launch_tile<3, 4>(tile, hist, x, w, bias, y, nullptr);
    else
      launch_tile<3, 0>(tile, hist, x, w, bias, y, nullptr);
  } else if (shuffle) {
    launch_tile<2, 3>(tile, hist, x, w, bias, y, nullptr);
  } else {
    if (accumulate)
      launch_tile<2, 4>(tile, hist, x, w, bias, y, nullptr);
    else
      launch_tile<2, 0>(tile, hist, x, w, bias, y, nullptr);
  }
}
}  // namespace

void conv2d_wgmma(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool accumulate,
                  const char* tile_name) {
  TD_CHECK(w.dim() == 5 && w.size(1) == 1, "conv2d_wgmma", "expected w [O, 1, k, k, C], got ", shape_str(w.shape()));
  run_conv(nullptr, x, w, bias, &y, accumulate, nullptr, tile_name);
}

void conv2d_wgmma_subpixel(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const char* tile_name) {
  TD_CHECK(w.dim() == 5 && w.size(1) == 1 && w.size(2) == 2 && w.size(3) == 2, "conv2d_wgmma_subpixel",
           "expected w [O, 1, 2, 2, C], got ", shape_str(w.shape()));
  run_conv(nullptr, x, w, bias, &y, false, nullptr, tile_name, true);
}

void conv2d_wgmma_norm(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvNormOut& norm,
                       const char* tile_name) {
  TD_CHECK(w.dim() == 5 && w.size(1) == 1, "conv2d_wgmma_norm", "expected w [O, 1, 3, 3, C], got ",
           shape_str(w.shape()));
  run_conv(nullptr, x, w, bias, norm.residual, norm.residual != nullptr, &norm, tile_name);
}

void conv3d_causal_wgmma(const Tensor& hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                         bool accumulate, const char* tile_name) {
  TD_CHECK(w.dim() == 5 && w.size(1) == 3 && w.size(2) == 3 && w.size(3) == 3, "conv3d_causal_wgmma",
           "expected w [O, 3, 3, 3, C], got ", shape_str(w.shape()));
  run_conv(&hist, x, w, bias, &y, accumulate, nullptr, tile_name);
}

}  // namespace cuda
}  // namespace td
