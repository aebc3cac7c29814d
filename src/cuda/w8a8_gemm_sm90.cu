// W8A8 GEMM, Hopper path: wgmma.mma_async m64n128k32 s8 x s8 -> s32 from swizzled shared memory, cp.async
// multistage pipeline, per-128-K-block int32 -> fp32 fold, the same fused epilogues as the mma.sync path.
// Only compiled into sm_90a code; other archs get a stub that traps (the host never launches it there).
#include "core/allocator.h"
#include "cuda/w8a8_gemm.cuh"

namespace td {
namespace cuda {

using namespace w8a8cfg;
using namespace w8a8;

namespace {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TD_W8A8_SM90 1
#endif

// Shared-memory matrix descriptor for a K-major tile with 128-byte rows and the 128-byte swizzle: start address,
// LBO (unused for swizzled K-major; 1 by convention), SBO = 1024 bytes between 8-row groups, layout SWIZZLE_128B.
__device__ __forceinline__ uint64_t make_desc(uint32_t saddr) {
  uint64_t d = 0;
  d |= uint64_t((saddr & 0x3FFFF) >> 4);
  d |= uint64_t(1) << 16;
  d |= uint64_t(1024 >> 4) << 32;
  d |= uint64_t(1) << 62;
  return d;
}

#ifdef TD_W8A8_SM90
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

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
#endif

template <OutMode kMode>
__global__ void __launch_bounds__(kThreads, 1) w8a8_gemm_wgmma_kernel(const GemmArgs p) {
#ifdef TD_W8A8_SM90
  extern __shared__ unsigned char smem_raw[];
  // SWIZZLE_128B tiles must start on 1024-byte boundaries; dynamic smem is only guaranteed 16.
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;

  int m0, n0;
  tile_coords(p, kBM, kBN, &m0, &n0);
  const int KB = p.K / kBK;

  int32_t acc[64];
  float accf[64];
#pragma unroll
  for (int i = 0; i < 64; i++) acc[i] = 0, accf[i] = 0.f;

#pragma unroll
  for (int s = 0; s < kWgStages - 1; s++) {
    if (s < KB) load_stage(base + s * kStageBytes, base + s * kStageBytes + kBM * kBK, p, m0, n0, s * kBK, tid);
    cp_async_commit();
  }

  const int row0 = m0 + wg * 64 + warp * 16 + g, row1 = row0 + 8;  // this thread's two accumulator rows
  for (int kb = 0; kb < KB; kb++) {
    cp_async_wait<kWgStages - 2>();
    // cp.async writes are generic-proxy writes; wgmma reads shared memory through the async proxy.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();  // stage kb complete for all threads; both warpgroups finished reading stage kb-1
    {
      const int nk = kb + kWgStages - 1;
      if (nk < KB) {
        const int st = nk % kWgStages;
        load_stage(base + st * kStageBytes, base + st * kStageBytes + kBM * kBK, p, m0, n0, nk * kBK, tid);
      }
      cp_async_commit();
    }
    float s0 = 0.f, s1 = 0.f;
    if (kMode != OutMode::RawI32) {
      const float sw = __ldg(p.sw + size_t(n0 / kBN) * KB + kb);
      s0 = row0 < p.M ? __ldg(p.sa + size_t(row0) * KB + kb) * sw : 0.f;
      s1 = row1 < p.M ? __ldg(p.sa + size_t(row1) * KB + kb) * sw : 0.f;
    }

    const uint32_t sA = base + (kb % kWgStages) * kStageBytes + wg * 64 * kBK, sB = base + (kb % kWgStages) * kStageBytes + kBM * kBK;
    const uint64_t da = make_desc(sA), db = make_desc(sB);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBK / 32; kk++) {
      // Advancing the start address by 32 bytes steps K by 32 inside the swizzle atom (the hardware applies the
      // XOR on the final address bits, hence the 1024-byte alignment of the tile).
      const int accumulate = (kMode == OutMode::RawI32) ? (kb > 0 || kk > 0) : (kk > 0);
      wgmma_m64n128k32(acc, da + uint64_t(kk * 2), db + uint64_t(kk * 2), accumulate);
    }
    wgmma_commit();
    wgmma_wait0();

    if (kMode != OutMode::RawI32) {
#pragma unroll
      for (int i = 0; i < 64; i++) {
        // |acc| <= 2^21: int -> float by the magic-number trick (2 full-rate ops instead of a quarter-rate I2F).
        const float f = __int_as_float(acc[i] + 0x4B400000) - 12582912.f;
        accf[i] = fmaf(f, (i & 2) ? s1 : s0, accf[i]);
      }
    }
  }
  cp_async_wait<0>();

  // Accumulator layout of m64nNk32: register 4j+{0,1} = (row g, cols 8j+2t, +1), 4j+{2,3} = (row g+8, same cols).
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const int n = n0 + j * 8 + 2 * t;
    if (row0 < p.M) store_pair<kMode>(p, row0, n, accf[4 * j], accf[4 * j + 1], acc[4 * j], acc[4 * j + 1]);
    if (row1 < p.M) store_pair<kMode>(p, row1, n, accf[4 * j + 2], accf[4 * j + 3], acc[4 * j + 2], acc[4 * j + 3]);
  }
#else
  __trap();  // never launched: the host checks w8a8_wgmma_available()
#endif
}

template <OutMode kMode>
void launch(const GemmArgs& p) {
  static bool configured = false;
  if (!configured) {
    TD_CUDA_CHECK(cudaFuncSetAttribute(w8a8_gemm_wgmma_kernel<kMode>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kWgSmemBytes));
    configured = true;
  }
  const int64_t tiles = int64_t((p.M + kBM - 1) / kBM) * (p.N / kBN);
  TD_CHECK(tiles < (int64_t(1) << 31), "w8a8 gemm", "problem too large: M=", p.M, " N=", p.N);
  w8a8_gemm_wgmma_kernel<kMode><<<unsigned(tiles), kThreads, kWgSmemBytes, stream()>>>(p);
  TD_CUDA_LAUNCH_CHECK();
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
      TD_CUDA_CHECK(cudaFuncGetAttributes(&fa, w8a8_gemm_wgmma_kernel<OutMode::BF16>));
      avail = fa.binaryVersion == 90 ? 1 : 0;
    }
  }
  return avail == 1;
}

void launch_w8a8_wgmma(int mode, const GemmArgs& p) {
  switch (OutMode(mode)) {
    case OutMode::RawI32: launch<OutMode::RawI32>(p); break;
    case OutMode::BF16: launch<OutMode::BF16>(p); break;
    case OutMode::F32: launch<OutMode::F32>(p); break;
    case OutMode::Residual: launch<OutMode::Residual>(p); break;
  }
}

}  // namespace cuda
}  // namespace td
