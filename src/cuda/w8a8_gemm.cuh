// Device-side pieces shared by the W8A8 GEMM kernels (mma.sync in w8a8_gemm.cu, wgmma in w8a8_gemm_sm90.cu).
#pragma once

#include <cstdint>

#include "cuda/act_int8.cuh"
#include "cuda/cuda_common.cuh"
#include "cuda/w8a8_gemm.h"
#include "cuda/w8a8_gemm_config.h"

namespace td {
namespace cuda {
namespace w8a8 {

using namespace w8a8cfg;

// ---------------------------------------------------------------------------------------------------------------
// small PTX helpers

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy; src_bytes = 0 zero-fills the destination (rows past M).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

__device__ __forceinline__ void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offset of 16-byte chunk `c` (0..7) of row `r` in a tile with 128-byte rows. XOR-swizzling the chunk with the
// row's low 3 bits makes both the cp.async stores and the 8-row ldmatrix reads bank-conflict free.
__device__ __forceinline__ uint32_t swz(int r, int c) { return uint32_t(r * 128 + ((c ^ (r & 7)) << 4)); }

// 0.5 v (1 + tanh(u)) written as v * sigmoid(2u) = v / (1 + e^(-2u)): one ex2 and one reciprocal instead of tanhf's
// ~25 instructions with branches, which made ffn.0's epilogue cost half as much as its GEMM. Relative error ~1e-6
// (tanh.approx.f32, at ~5e-4, would move int8 rounding decisions). e^(-2u) = inf for very negative u gives -0.
__device__ __forceinline__ float gelu_tanh(float v) {
  const float k0 = 0.7978845608028654f, k1 = 0.044715f;
  const float u = k0 * (v + k1 * v * v * v);
  return __fdividef(v, 1.f + __expf(-2.f * u));
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM

// Int8: the epilogue quantizes its fp32 result in 1x128 groups (one group = the CTA's 128 columns; wgmma only).
enum class OutMode : int { RawI32 = 0, BF16 = 1, F32 = 2, Residual = 3, Int8 = 4 };

struct GemmArgs {
  const int8_t* a;   // [M, K]
  const int8_t* w;   // [N, K]
  const float* sa;   // [M, K/128]
  const float* sw;   // [N/128, K/128]
  const void* bias;  // [N] or null
  int bias_bf16;
  const float* gate;  // [N] or null (Residual)
  void* out;          // [M, N]: i32 / bf16 / f32 / f32 residual
  int M, N, K;
  int gelu;
  float* qscale;  // Int8 mode: [M, N/128] (out is then i8 [M, N])
  // sm_90a kernels, bf16 / int8 output: the staged epilogue hands each 64-row half to the TMA unit (the output's
  // tensor map is the kernel's tmC) instead of storing it from the threads.
  int tma_store;
};

// Loads one K tile of A (rows m0..m0+127) and W (rows n0..n0+127) into a stage. 2048 16-byte chunks, 8 per thread.
__device__ __forceinline__ void load_stage(uint32_t sA, uint32_t sB, const GemmArgs& p, int m0, int n0, int k0,
                                           int tid) {
#pragma unroll
  for (int i = 0; i < (kBM * kBK / 16) / kThreads; i++) {
    const int id = tid + i * kThreads, r = id >> 3, c = id & 7;
    const int m = m0 + r;
    const bool ok = m < p.M;
    // Out-of-range rows read nothing (src_bytes 0) from a valid address and land as zeros.
    const int8_t* src = p.a + (size_t(ok ? m : 0) * p.K + k0 + c * 16);
    cp_async16(sA + swz(r, c), src, ok ? 16 : 0);
  }
#pragma unroll
  for (int i = 0; i < (kBN * kBK / 16) / kThreads; i++) {
    const int id = tid + i * kThreads, r = id >> 3, c = id & 7;
    const int8_t* src = p.w + (size_t(n0 + r) * p.K + k0 + c * 16);
    cp_async16(sB + swz(r, c), src, 16);
  }
}

// The bias of output columns n, n + 1 (zeros without a bias).
__device__ __forceinline__ float2 bias_pair(const GemmArgs& p, int n) {
  if (!p.bias) return make_float2(0.f, 0.f);
  if (p.bias_bf16)
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(static_cast<const __nv_bfloat16*>(p.bias) + n));
  return *reinterpret_cast<const float2*>(static_cast<const float*>(p.bias) + n);
}

// The int8 epilogue's values for a warpgroup accumulator tile (wgmma layout, 128 columns n0..n0+127 of rows
// row0/row1): bias, GELU, then each row's amax over its 128 columns -- held by the 4 lanes of a quad -- and
// TurboDiffusion's rounding scale 128 / amax.
struct QuantRows {
  float v[64];
  float amax0 = 1e-8f, amax1 = 1e-8f, inv0, inv1;
};
__device__ __forceinline__ void quant_rows(const GemmArgs& p, const float (&accf)[64], int n0, int t, QuantRows& r) {
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const float2 b = bias_pair(p, n0 + j * 8 + 2 * t);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float x = accf[4 * j + e] + ((e & 1) ? b.y : b.x);
      if (p.gelu) x = gelu_tanh(x);
      r.v[4 * j + e] = x;
      if (e < 2) r.amax0 = fmaxf(r.amax0, fabsf(x));
      else r.amax1 = fmaxf(r.amax1, fabsf(x));
    }
  }
#pragma unroll
  for (int o = 1; o <= 2; o <<= 1) {
    r.amax0 = fmaxf(r.amax0, __shfl_xor_sync(0xffffffffu, r.amax0, o));
    r.amax1 = fmaxf(r.amax1, __shfl_xor_sync(0xffffffffu, r.amax1, o));
  }
  r.inv0 = act_int8_inv(r.amax0), r.inv1 = act_int8_inv(r.amax1);
}

// Applies bias / GELU / gate to one pair of adjacent output columns (n even) of row m and stores it.
template <OutMode kMode>
__device__ __forceinline__ void store_pair(const GemmArgs& p, int m, int n, float v0, float v1, int32_t i0,
                                           int32_t i1) {
  const size_t o = size_t(m) * p.N + n;
  if (kMode == OutMode::RawI32) {
    *reinterpret_cast<int2*>(static_cast<int32_t*>(p.out) + o) = make_int2(i0, i1);
    return;
  }
  const float2 b = bias_pair(p, n);
  v0 += b.x, v1 += b.y;
  if (p.gelu) v0 = gelu_tanh(v0), v1 = gelu_tanh(v1);
  if (kMode == OutMode::BF16) {
    *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.out) + o) = __floats2bfloat162_rn(v0, v1);
  } else if (kMode == OutMode::F32) {
    *reinterpret_cast<float2*>(static_cast<float*>(p.out) + o) = make_float2(v0, v1);
  } else {
    float g0 = 1.f, g1 = 1.f;
    if (p.gate) {
      const float2 gg = *reinterpret_cast<const float2*>(p.gate + n);
      g0 = gg.x, g1 = gg.y;
    }
    float2* r = reinterpret_cast<float2*>(static_cast<float*>(p.out) + o);
    float2 x = *r;
    x.x = fmaf(g0, v0, x.x), x.y = fmaf(g1, v1, x.y);
    *r = x;
  }
}

// Int8 epilogue for a warpgroup accumulator tile (see quant_rows), stored straight to global memory.
__device__ __forceinline__ void store_int8_rows(const GemmArgs& p, const float (&accf)[64], int row0, int row1,
                                                int n0, int t) {
  QuantRows r;
  quant_rows(p, accf, n0, t, r);
  int8_t* q = static_cast<int8_t*>(p.out);
#pragma unroll
  for (int j = 0; j < 16; j++) {
    const int n = n0 + j * 8 + 2 * t;
    uint16_t* q0 = reinterpret_cast<uint16_t*>(q + size_t(row0) * p.N + n);
    uint16_t* q1 = reinterpret_cast<uint16_t*>(q + size_t(row1) * p.N + n);
    if (row0 < p.M) *q0 = act_int8_pack2(r.v[4 * j], r.v[4 * j + 1], r.inv0);
    if (row1 < p.M) *q1 = act_int8_pack2(r.v[4 * j + 2], r.v[4 * j + 3], r.inv1);
  }
  if (t == 0) {
    if (row0 < p.M) p.qscale[size_t(row0) * (p.N / 128) + n0 / 128] = act_int8_scale(r.amax0);
    if (row1 < p.M) p.qscale[size_t(row1) * (p.N / 128) + n0 / 128] = act_int8_scale(r.amax1);
  }
}

// Epilogue for a warpgroup accumulator tile of m64n128k32 (register 4j+{0,1} = row row0, cols n0+8j+2t, +1;
// 4j+{2,3} = row row1, same cols): the int8 path through store_int8_rows, otherwise store_pair per column pair.
template <OutMode kMode>
__device__ __forceinline__ void store_tile(const GemmArgs& p, const float (&accf)[64], const int32_t (&acc)[64],
                                           int row0, int row1, int n0, int t) {
  if constexpr (kMode == OutMode::Int8) {
    store_int8_rows(p, accf, row0, row1, n0, t);
  } else if constexpr (kMode == OutMode::Residual) {
    // All 32 residual loads first, then the FMAs and stores: in store_pair's load -> FMA -> store order the compiler
    // cannot hoist the next load above a store through the same pointer, so every pair paid a full DRAM round
    // trip (ncu: the residual GEMMs ran 1.5x the time of the same GEMM with a bf16 store).
    float* out = static_cast<float*>(p.out);
    float2 x0[16], x1[16];
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const int n = n0 + j * 8 + 2 * t;
      x0[j] = row0 < p.M ? *reinterpret_cast<const float2*>(out + size_t(row0) * p.N + n) : make_float2(0.f, 0.f);
      x1[j] = row1 < p.M ? *reinterpret_cast<const float2*>(out + size_t(row1) * p.N + n) : make_float2(0.f, 0.f);
    }
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const int n = n0 + j * 8 + 2 * t;
      const float2 b = bias_pair(p, n);
      const float b0 = b.x, b1 = b.y;
      float g0 = 1.f, g1 = 1.f;
      if (p.gate) {
        const float2 gg = *reinterpret_cast<const float2*>(p.gate + n);
        g0 = gg.x, g1 = gg.y;
      }
      float v0 = accf[4 * j] + b0, v1 = accf[4 * j + 1] + b1, w0 = accf[4 * j + 2] + b0, w1 = accf[4 * j + 3] + b1;
      if (p.gelu) v0 = gelu_tanh(v0), v1 = gelu_tanh(v1), w0 = gelu_tanh(w0), w1 = gelu_tanh(w1);
      float2* o0 = reinterpret_cast<float2*>(out + size_t(row0) * p.N + n);
      float2* o1 = reinterpret_cast<float2*>(out + size_t(row1) * p.N + n);
      if (row0 < p.M) *o0 = make_float2(fmaf(g0, v0, x0[j].x), fmaf(g1, v1, x0[j].y));
      if (row1 < p.M) *o1 = make_float2(fmaf(g0, w0, x1[j].x), fmaf(g1, w1, x1[j].y));
    }
  } else {
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const int n = n0 + j * 8 + 2 * t;
      if (row0 < p.M) store_pair<kMode>(p, row0, n, accf[4 * j], accf[4 * j + 1], acc[4 * j], acc[4 * j + 1]);
      if (row1 < p.M)
        store_pair<kMode>(p, row1, n, accf[4 * j + 2], accf[4 * j + 3], acc[4 * j + 2], acc[4 * j + 3]);
    }
  }
}

// Staged epilogue of one 64 x 128 warpgroup half (bf16 or int8 output): the values go into `buf` (16 KiB of shared
// memory owned by this warpgroup, 1024-byte aligned) as 128-byte-swizzle boxes of 64 rows x 128 bytes (bf16: two
// boxes, columns 0-63 and 64-127; int8: one), 16-byte chunk c of row r at c ^ (r & 7), so the fragment writes are
// conflict free and the boxes are what a SWIZZLE_128B tensor map stores. Then either thread 0 of the warpgroup hands
// them to the TMA unit (p.tma_store, tmc = the output's map: the threads go on to the next tile while the stores
// drain, and the next call waits only until the unit has read buf) or each thread stores whole 16-byte chunks.
// `bar` is the warpgroup's named barrier (128 threads). rows: this thread's accumulator rows row0/row1 are local rows
// lr0 = warp*16 + g and lr0 + 8 of the half whose first global row is m0.
// kPending: how many of this thread's newer TMA stores may still be reading shared memory when the call starts (1 when
// the caller alternates two buffers).
template <OutMode kMode, int kPending = 0>
__device__ __forceinline__ void store_half_staged(const GemmArgs& p, const float (&accf)[64], int m0, int n0,
                                                 int row0, int row1, int warp, int g, int t, int tid_wg, uint32_t buf,
                                                 int bar, const void* tmc) {
  static_assert(kMode == OutMode::BF16 || kMode == OutMode::Int8, "staged epilogue: bf16 or int8 output");
  const int lr0 = warp * 16 + g, lr1 = lr0 + 8;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (p.tma_store && tid_wg == 0) asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
#endif
  asm volatile("bar.sync %0, 128;\n" ::"r"(bar) : "memory");  // the previous half's reads of buf are done
  if constexpr (kMode == OutMode::BF16) {
    // Chunk j holds columns 8j..8j+7: box j / 8, chunk j % 8 of its 128-byte row.
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const float2 b = bias_pair(p, n0 + j * 8 + 2 * t);
      float v0 = accf[4 * j] + b.x, v1 = accf[4 * j + 1] + b.y, w0 = accf[4 * j + 2] + b.x, w1 = accf[4 * j + 3] + b.y;
      if (p.gelu) v0 = gelu_tanh(v0), v1 = gelu_tanh(v1), w0 = gelu_tanh(w0), w1 = gelu_tanh(w1);
      const __nv_bfloat162 h0 = __floats2bfloat162_rn(v0, v1), h1 = __floats2bfloat162_rn(w0, w1);
      const uint32_t box = buf + (j >> 3) * 8192;
      const uint32_t a0 = box + lr0 * 128 + (((j & 7) ^ (lr0 & 7)) << 4) + 4 * t;
      const uint32_t a1 = box + lr1 * 128 + (((j & 7) ^ (lr1 & 7)) << 4) + 4 * t;
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a0), "r"(*reinterpret_cast<const uint32_t*>(&h0)) : "memory");
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(a1), "r"(*reinterpret_cast<const uint32_t*>(&h1)) : "memory");
    }
  } else {
    // Int8 (see quant_rows); row = 128 bytes = 8 chunks, physical chunk (j / 2) ^ (row & 7).
    QuantRows r;
    quant_rows(p, accf, n0, t, r);
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const int byte = (j & 1) * 8 + 2 * t;  // within the 16-byte chunk j / 2
      const uint32_t a0 = buf + lr0 * 128 + (((j >> 1) ^ (lr0 & 7)) << 4) + byte;
      const uint32_t a1 = buf + lr1 * 128 + (((j >> 1) ^ (lr1 & 7)) << 4) + byte;
      asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(a0), "h"(act_int8_pack2(r.v[4 * j], r.v[4 * j + 1], r.inv0))
                   : "memory");
      asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(a1), "h"(act_int8_pack2(r.v[4 * j + 2], r.v[4 * j + 3], r.inv1))
                   : "memory");
    }
    if (t == 0) {
      if (row0 < p.M) p.qscale[size_t(row0) * (p.N / 128) + n0 / 128] = act_int8_scale(r.amax0);
      if (row1 < p.M) p.qscale[size_t(row1) * (p.N / 128) + n0 / 128] = act_int8_scale(r.amax1);
    }
  }
  constexpr int kBoxes = kMode == OutMode::BF16 ? 2 : 1;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (p.tma_store) {
    // Every thread's shared-memory writes become visible to the TMA unit's (async) proxy before thread 0 issues.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    asm volatile("bar.sync %0, 128;\n" ::"r"(bar) : "memory");
    if (tid_wg == 0) {
#pragma unroll
      for (int b = 0; b < kBoxes; b++)  // rows past M are clipped by the unit
        asm volatile(
            "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(tmc),
            "r"(n0 + b * 64), "r"(m0), "r"(buf + b * 8192)
            : "memory");
      asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
    }
    return;
  }
#endif
  asm volatile("bar.sync %0, 128;\n" ::"r"(bar) : "memory");  // the half is complete in buf
#pragma unroll
  for (int it = 0; it < 64 * 8 * kBoxes / 128; it++) {
    const int id = tid_wg + it * 128, r = id / (8 * kBoxes), c = id % (8 * kBoxes);
    const int m = m0 + r;
    uint4 val;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(val.x), "=r"(val.y), "=r"(val.z), "=r"(val.w)
                 : "r"(buf + (c >> 3) * 8192 + r * 128 + (((c & 7) ^ (r & 7)) << 4)));
    if (m < p.M) {
      char* dst = static_cast<char*>(p.out) + (size_t(m) * p.N + n0) * (kMode == OutMode::BF16 ? 2 : 1) + c * 16;
      *reinterpret_cast<uint4*>(dst) = val;
    }
  }
}

// Waits until this thread's TMA stores (store_half_staged) have completed: before the CTA exits.
__device__ __forceinline__ void drain_tma_stores() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}

// Staged residual epilogue of one 64 x 128 warpgroup half (x += gate * y in f32, as store_tile's Residual branch):
// y goes through `buf` 64 columns at a time (64 rows x 256 bytes fill the 16 KiB buffer; 16-byte chunks XOR-swizzled
// by row), then each thread updates whole 16-byte pieces of x rows, four loads of x in flight before the FMAs and
// stores. Straight from the fragments, every thread read and wrote 8-byte pieces scattered over 16 rows. `bar` is
// the warpgroup's named barrier (128 threads).
__device__ __forceinline__ void store_half_residual_staged(const GemmArgs& p, const float (&accf)[64], int m0, int n0,
                                                           int warp, int g, int t, int tid_wg, uint32_t buf, int bar) {
  const int lr0 = warp * 16 + g, lr1 = lr0 + 8;
  float* out = static_cast<float*>(p.out);
#pragma unroll
  for (int pass = 0; pass < 2; pass++) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(bar) : "memory");  // the previous reads of buf are done
#pragma unroll
    for (int jj = 0; jj < 8; jj++) {
      const int j = pass * 8 + jj;
      float v0 = accf[4 * j], v1 = accf[4 * j + 1], w0 = accf[4 * j + 2], w1 = accf[4 * j + 3];
      if (p.gelu) v0 = gelu_tanh(v0), v1 = gelu_tanh(v1), w0 = gelu_tanh(w0), w1 = gelu_tanh(w1);
      const int ch = 2 * jj + (t >> 1);  // columns 8jj + 2t, +1 of the pass: chunk ch, bytes (t & 1) * 8
      const uint32_t a0 = buf + lr0 * 256 + ((ch ^ (lr0 & 15)) << 4) + (t & 1) * 8;
      const uint32_t a1 = buf + lr1 * 256 + ((ch ^ (lr1 & 15)) << 4) + (t & 1) * 8;
      asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(a0), "f"(v0), "f"(v1) : "memory");
      asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(a1), "f"(w0), "f"(w1) : "memory");
    }
    asm volatile("bar.sync %0, 128;\n" ::"r"(bar) : "memory");  // the pass's 64 columns are complete in buf
    const int nc = n0 + pass * 64;
#pragma unroll
    for (int half = 0; half < 2; half++) {  // 4 loads in flight at a time: 8 made the consumers spill
      float4 x[4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int id = tid_wg + (half * 4 + i) * 128, r = id >> 4, c = id & 15, m = m0 + r;
        x[i] = m < p.M ? *reinterpret_cast<const float4*>(out + size_t(m) * p.N + nc + c * 4)
                       : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int id = tid_wg + (half * 4 + i) * 128, r = id >> 4, c = id & 15, m = m0 + r;
        float4 y;
        asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                     : "=f"(y.x), "=f"(y.y), "=f"(y.z), "=f"(y.w)
                     : "r"(buf + r * 256 + ((c ^ (r & 15)) << 4)));
        const float4 gt = p.gate ? __ldg(reinterpret_cast<const float4*>(p.gate + nc + c * 4))
                                 : make_float4(1.f, 1.f, 1.f, 1.f);
        if (m < p.M) {
          *reinterpret_cast<float4*>(out + size_t(m) * p.N + nc + c * 4) =
              make_float4(fmaf(gt.x, y.x, x[i].x), fmaf(gt.y, y.y, x[i].y), fmaf(gt.z, y.z, x[i].z),
                          fmaf(gt.w, y.w, x[i].w));
        }
      }
    }
  }
}

// Grouped raster: kGroupM M tiles share one N tile before moving on, so W's panel stays hot in L2.
__device__ __forceinline__ void tile_coords(const GemmArgs& p, int bm, int bn, int* m0, int* n0,
                                            int pid = int(blockIdx.x)) {
  const int tiles_m = (p.M + bm - 1) / bm, tiles_n = p.N / bn;
  const int per_group = kGroupM * tiles_n;
  const int group = pid / per_group, first_m = group * kGroupM;
  const int gsize = min(tiles_m - first_m, kGroupM);
  *m0 = (first_m + (pid % per_group) % gsize) * bm;
  *n0 = ((pid % per_group) / gsize) * bn;
}

}  // namespace w8a8

// The sm_90a kernels (w8a8_gemm_sm90.cu). w8a8_wgmma_available: whether this binary and device run them.
bool w8a8_wgmma_available();
// ws: TMA producer warp + two consumer warpgroups, persistent; wsmc: ws on 2-CTA clusters sharing the W tile by
// multicast; ws256: 128 x 256 tiles (N not a multiple of 256 and raw int32 output run on ws); ws256mc: ws256 on
// 2-CTA clusters; ws3: 192 x 128 tiles, three consumer warpgroups in turn; ws2: 128 x 128 tiles, two int32
// accumulator sets per warpgroup (the fold of one K block overlaps the MMAs of the next); ws2mc: ws2 on 2-CTA
// clusters; by-shape: below kW3MaxN columns ws3 up to kW3MaxK and ws2 above it, else ws256. (The cp.async multistage
// "wgmma" and its double-accumulator "wgmma2" form, which ptxas serialized, lost to these on every Wan shape and
// were removed; perf.md has their numbers.)
void launch_w8a8_wgmma(int mode, const w8a8::GemmArgs& p, W8A8Kernel k);

}  // namespace cuda
}  // namespace td
