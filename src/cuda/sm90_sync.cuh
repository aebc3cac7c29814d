// Hopper (sm_90a) synchronisation helpers shared by the warp-specialized kernels (W8A8 GEMM, VAE ring conv):
// mbarrier rings between a producer and consumer warpgroups, cp.async completion on an mbarrier, and the register
// hand-over between warpgroups. Only meaningful in sm_90a code; the bodies compile to nothing elsewhere (the hosts
// never launch those kernels there).
#pragma once

#include <cstdint>

namespace td {
namespace cuda {
namespace sm90 {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TD_SM90_ASM(...) asm volatile(__VA_ARGS__)
#else
#define TD_SM90_ASM(...) \
  do {                   \
  } while (0)
#endif

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  TD_SM90_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// After thread 0's mbarrier.init calls: makes them visible (to the async proxy and the cluster) before use.
__device__ __forceinline__ void fence_mbarrier_init() {
  TD_SM90_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Thread 0's set-up of an S-stage ring: the full barriers expect full_count arrivals, the empty ones empty_count,
// made visible to the cluster (TMA multicast peers arrive on them). The caller then synchronises the CTA or cluster.
template <int S>
__device__ __forceinline__ void init_ring(uint64_t (&full)[S], uint64_t (&empty)[S], int full_count, int empty_count) {
#pragma unroll
  for (int s = 0; s < S; s++) {
    mbar_init(smem_addr(&full[s]), full_count);
    mbar_init(smem_addr(&empty[s]), empty_count);
  }
  fence_mbarrier_init();
}
// Arrives once and adds `bytes` to the transaction count the current phase waits for (TMA / bulk copies).
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  TD_SM90_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// One contiguous global -> shared copy by the bulk-copy engine (16-byte aligned, a multiple of 16 bytes), completing
// on `bar` as transaction bytes.
__device__ __forceinline__ void bulk_copy_g2s(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  TD_SM90_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
              "l"(src), "r"(bytes), "r"(bar)
              : "memory");
}
// One box of a 3-D TMA tensor map (coordinates innermost first) into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const void* map, uint32_t bar, int x, int y, int z) {
  TD_SM90_ASM(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];\n" ::
          "r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(x), "r"(y), "r"(z)
      : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  TD_SM90_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives once this thread's earlier cp.async copies have landed; .noinc: the barrier's expected count already
// includes this arrival.
__device__ __forceinline__ void mbar_arrive_cp_async(uint32_t bar) {
  TD_SM90_ASM("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
// Spins until the phase with this parity has completed (a fresh barrier counts its "previous" phase, parity 1, as
// complete, which lets the producer start on an empty ring).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
#endif
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  TD_SM90_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  TD_SM90_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

#undef TD_SM90_ASM

}  // namespace sm90
}  // namespace cuda
}  // namespace td
