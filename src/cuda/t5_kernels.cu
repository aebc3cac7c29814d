// umT5 encoder kernels (see t5_kernels.h for semantics, t5_kernels_config.h for the launch shapes).
#include "cuda/t5_kernels.h"

#include "cuda/cuda_common.cuh"
#include "cuda/t5_kernels_config.h"

namespace td {
namespace cuda {

namespace {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

__device__ __forceinline__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
  for (int w = 0; w < nw; w++) s += red[w];
  __syncthreads();
  return s;
}

__device__ __forceinline__ float block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
  for (int w = 0; w < nw; w++) s = fmaxf(s, red[w]);
  __syncthreads();
  return s;
}

template <typename TW, typename TY>
__global__ void rmsnorm_kernel(const float* __restrict__ x, const TW* __restrict__ w, TY* __restrict__ y, int D,
                               float eps) {
  __shared__ float red[32];
  const float* xr = x + size_t(blockIdx.x) * D;
  float ss = 0.f;
  for (int j = threadIdx.x; j < D; j += blockDim.x) ss += xr[j] * xr[j];
  ss = block_sum(ss, red);
  const float inv = rsqrtf(ss / float(D) + eps);
  TY* yr = y + size_t(blockIdx.x) * D;
  for (int j = threadIdx.x; j < D; j += blockDim.x) yr[j] = from_f<TY>(xr[j] * inv * to_f(w[j]));
}

// See t5_kernels_config.h for the tiling. smem: Qs[Q][Dh+1], KV[K][Dh+1], S[Q][Lp] (f32).
__global__ void __launch_bounds__(kT5AttnThreads) attention_kernel(const __nv_bfloat16* __restrict__ qkv,
                                                                   const float* __restrict__ pos,
                                                                   const int* __restrict__ buckets,
                                                                   const int* __restrict__ mask,
                                                                   __nv_bfloat16* __restrict__ out, int L, int H,
                                                                   int Dh, int Lp) {
  extern __shared__ float smem[];
  const int ld = Dh + 1;
  float* Qs = smem;
  float* KV = Qs + kT5AttnQ * ld;
  float* S = KV + kT5AttnK * ld;
  const int h = blockIdx.y, q0 = blockIdx.x * kT5AttnQ;
  const int A = H * Dh, row_stride = 3 * A;
  const int t = threadIdx.x, r = t >> 3, c8 = t & 7;
  const int i = q0 + r;

  for (int idx = t; idx < kT5AttnQ * Dh; idx += kT5AttnThreads) {
    int rr = idx / Dh, d = idx % Dh, qi = q0 + rr;
    Qs[rr * ld + d] = qi < L ? __bfloat162float(qkv[size_t(qi) * row_stride + h * Dh + d]) : 0.f;
  }
  for (int kt = 0; kt < Lp; kt += kT5AttnK) {
    __syncthreads();  // Qs ready / previous tile consumed
    for (int idx = t; idx < kT5AttnK * Dh; idx += kT5AttnThreads) {
      int j = idx / Dh, d = idx % Dh, kj = kt + j;
      KV[j * ld + d] = kj < L ? __bfloat162float(qkv[size_t(kj) * row_stride + A + h * Dh + d]) : 0.f;
    }
    __syncthreads();
    float acc[kT5AttnK / 8];
#pragma unroll
    for (int m = 0; m < kT5AttnK / 8; m++) acc[m] = 0.f;
    for (int d = 0; d < Dh; d++) {
      float qv = Qs[r * ld + d];
#pragma unroll
      for (int m = 0; m < kT5AttnK / 8; m++) acc[m] += qv * KV[(c8 + 8 * m) * ld + d];
    }
#pragma unroll
    for (int m = 0; m < kT5AttnK / 8; m++) {
      int j = kt + c8 + 8 * m;
      float s = -INFINITY;
      if (j < L && i < L && (mask == nullptr || mask[j] != 0)) s = acc[m] + pos[buckets[j - i + L - 1] * H + h];
      S[r * Lp + j] = s;
    }
  }
  __syncthreads();

  // Softmax per row (fp32), one warp per row.
  const int warp = t >> 5, lane = t & 31;
  for (int rr = warp; rr < kT5AttnQ; rr += kT5AttnThreads / 32) {
    float* Sr = S + rr * Lp;
    float mx = -INFINITY;
    for (int j = lane; j < L; j += 32) mx = fmaxf(mx, Sr[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int j = lane; j < Lp; j += 32) {
      float e = (j < L && mx != -INFINITY && Sr[j] != -INFINITY) ? __expf(Sr[j] - mx) : 0.f;
      Sr[j] = e;
      sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = sum > 0.f ? 1.f / sum : 0.f;
    for (int j = lane; j < Lp; j += 32) Sr[j] *= inv;
  }

  float o[kT5AttnMaxHeadDim / 8];
#pragma unroll
  for (int m = 0; m < kT5AttnMaxHeadDim / 8; m++) o[m] = 0.f;
  const int nd = Dh / 8;
  for (int kt = 0; kt < Lp; kt += kT5AttnK) {
    __syncthreads();
    for (int idx = t; idx < kT5AttnK * Dh; idx += kT5AttnThreads) {
      int j = idx / Dh, d = idx % Dh, kj = kt + j;
      KV[j * ld + d] = kj < L ? __bfloat162float(qkv[size_t(kj) * row_stride + 2 * A + h * Dh + d]) : 0.f;
    }
    __syncthreads();
    for (int c = 0; c < kT5AttnK; c++) {
      float p = S[r * Lp + kt + c];
#pragma unroll
      for (int m = 0; m < kT5AttnMaxHeadDim / 8; m++)
        if (m < nd) o[m] += p * KV[c * ld + c8 + 8 * m];
    }
  }
  if (i < L) {
#pragma unroll
    for (int m = 0; m < kT5AttnMaxHeadDim / 8; m++)
      if (m < nd) out[size_t(i) * A + h * Dh + c8 + 8 * m] = __float2bfloat16(o[m]);
  }
}

// ---- Tensor-core attention (head_dim 32/64/128): flash-style, mma.sync m16n8k16 bf16, fp32 accumulators ----
// See t5_kernels_config.h for the tiling. Each warp owns 16 queries of the block's kT5MmaQ; keys/values stream
// through shared memory kT5MmaK rows at a time; the softmax is online (running max / sum per query row), so the
// score row never leaves registers. The T5 position bias depends only on key - query, so the block stages the
// head's bias for every offset (2L-1 floats, with the padding mask folded into a per-key additive term) once.
//
// mma.m16n8k16 fragment layouts (g = lane / 4, t = lane % 4):
//   A 16x16 row-major:  a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B 16x8 (k x n):     b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C 16x8:             c0,c1 = C[g][2t, 2t+1], c2,c3 = C[g+8][2t, 2t+1]
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo: the lower k index
  return *reinterpret_cast<uint32_t*>(&v);
}

template <int DH>
__global__ void __launch_bounds__(kT5MmaThreads) attention_mma_kernel(const __nv_bfloat16* __restrict__ qkv,
                                                                      const float* __restrict__ pos,
                                                                      const int* __restrict__ buckets,
                                                                      const int* __restrict__ mask,
                                                                      __nv_bfloat16* __restrict__ out, int L, int H) {
  constexpr int KS = DH + 8;        // Ks row stride (bf16): 16-byte rows, conflict-free fragment reads
  constexpr int VS = kT5MmaK + 8;   // Vt row stride (bf16)
  constexpr int NT = kT5MmaK / 8;   // score n-tiles (8 keys each) per key tile
  constexpr int DT = DH / 8;        // output n-tiles (8 dims each)
  constexpr int QK = DH / 16;       // k-steps of Q.K^T
  __shared__ __align__(16) __nv_bfloat16 Ks[kT5MmaK * KS];
  __shared__ __align__(16) __nv_bfloat16 Vt[DH * VS];  // V transposed: [dim][key]
  extern __shared__ float dyn[];
  float* bias = dyn;               // [2L-1]: bias of key - query = r at r + L - 1 (log2 units)
  float* keyadd = dyn + 2 * L - 1; // [L]: 0, or -inf for a padding key

  const int h = blockIdx.y, q0 = blockIdx.x * kT5MmaQ;
  const int A = H * DH;
  const size_t row_stride = size_t(3) * A;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  constexpr float kLog2e = 1.4426950408889634f;

  for (int r = tid; r < 2 * L - 1; r += kT5MmaThreads) bias[r] = pos[buckets[r] * H + h] * kLog2e;
  for (int j = tid; j < L; j += kT5MmaThreads) keyadd[j] = (mask == nullptr || mask[j] != 0) ? 0.f : -INFINITY;

  // Q fragments straight from global memory (rows past L read row L-1: finite, never stored).
  const int qa = min(q0 + warp * 16 + g, L - 1), qb = min(q0 + warp * 16 + g + 8, L - 1);
  uint32_t qf[QK][4];
  {
    const __nv_bfloat16* ra = qkv + size_t(qa) * row_stride + size_t(h) * DH;
    const __nv_bfloat16* rb = qkv + size_t(qb) * row_stride + size_t(h) * DH;
#pragma unroll
    for (int kk = 0; kk < QK; kk++) {
      qf[kk][0] = *reinterpret_cast<const uint32_t*>(ra + 16 * kk + 2 * t);
      qf[kk][1] = *reinterpret_cast<const uint32_t*>(rb + 16 * kk + 2 * t);
      qf[kk][2] = *reinterpret_cast<const uint32_t*>(ra + 16 * kk + 8 + 2 * t);
      qf[kk][3] = *reinterpret_cast<const uint32_t*>(rb + 16 * kk + 8 + 2 * t);
    }
  }
  // Bias row offsets: bias index = key - query + L - 1 for the two rows this thread holds.
  const int boff_a = L - 1 - qa, boff_b = L - 1 - qb;

  float o[DT][4];
#pragma unroll
  for (int n = 0; n < DT; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

  for (int kt = 0; kt < L; kt += kT5MmaK) {
    __syncthreads();  // previous tile consumed (and, the first time, bias/keyadd staged)
    // K tile: 16-byte chunks, rows past L zero.
    for (int idx = tid; idx < kT5MmaK * (DH / 8); idx += kT5MmaThreads) {
      const int j = idx / (DH / 8), c = idx % (DH / 8), kj = kt + j;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (kj < L) v = *reinterpret_cast<const uint4*>(qkv + size_t(kj) * row_stride + A + size_t(h) * DH + 8 * c);
      *reinterpret_cast<uint4*>(Ks + j * KS + 8 * c) = v;
    }
    // V tile, transposed on the way in (zero past L: a zero probability times garbage could still be NaN).
    for (int idx = tid; idx < kT5MmaK * (DH / 8); idx += kT5MmaThreads) {
      const int j = idx % kT5MmaK, c = idx / kT5MmaK, kj = kt + j;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (kj < L) v = *reinterpret_cast<const uint4*>(qkv + size_t(kj) * row_stride + 2 * A + size_t(h) * DH + 8 * c);
      const __nv_bfloat16* e = reinterpret_cast<const __nv_bfloat16*>(&v);
#pragma unroll
      for (int x = 0; x < 8; x++) Vt[(8 * c + x) * VS + j] = e[x];
    }
    __syncthreads();

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      const __nv_bfloat16* kr = Ks + (8 * n + g) * KS + 2 * t;
#pragma unroll
      for (int kk = 0; kk < QK; kk++)
        mma_bf16_16816(s[n], qf[kk], *reinterpret_cast<const uint32_t*>(kr + 16 * kk),
                       *reinterpret_cast<const uint32_t*>(kr + 16 * kk + 8));
    }
    // Scores in log2 units plus bias and mask; running max per row.
    float mx_a = m_a, mx_b = m_b;
#pragma unroll
    for (int n = 0; n < NT; n++) {
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int j = kt + 8 * n + 2 * t + e;
        if (j < L) {
          const float ka = keyadd[j];
          s[n][e] = s[n][e] * kLog2e + bias[j + boff_a] + ka;
          s[n][2 + e] = s[n][2 + e] * kLog2e + bias[j + boff_b] + ka;
        } else {
          s[n][e] = s[n][2 + e] = -INFINITY;
        }
        mx_a = fmaxf(mx_a, s[n][e]);
        mx_b = fmaxf(mx_b, s[n][2 + e]);
      }
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
      mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
    }
    // A row with no unmasked key yet keeps max -inf: its probabilities are 0 and nothing is rescaled.
    const float base_a = mx_a == -INFINITY ? 0.f : mx_a, base_b = mx_b == -INFINITY ? 0.f : mx_b;
    const float alpha_a = exp2f(m_a - base_a), alpha_b = exp2f(m_b - base_b);  // exp2(-inf) = 0
    m_a = mx_a;
    m_b = mx_b;
    l_a *= alpha_a;
    l_b *= alpha_b;
#pragma unroll
    for (int n = 0; n < DT; n++) {
      o[n][0] *= alpha_a;
      o[n][1] *= alpha_a;
      o[n][2] *= alpha_b;
      o[n][3] *= alpha_b;
    }
#pragma unroll
    for (int n = 0; n < NT; n++) {
      s[n][0] = exp2f(s[n][0] - base_a);
      s[n][1] = exp2f(s[n][1] - base_a);
      s[n][2] = exp2f(s[n][2] - base_b);
      s[n][3] = exp2f(s[n][3] - base_b);
      l_a += s[n][0] + s[n][1];
      l_b += s[n][2] + s[n][3];
    }
    // O += P V: the score accumulators become the A fragments (two n-tiles of 8 keys = one k-step of 16).
#pragma unroll
    for (int kk = 0; kk < kT5MmaK / 16; kk++) {
      uint32_t pa[4];
      pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < DT; n++) {
        const __nv_bfloat16* vr = Vt + (8 * n + g) * VS + 16 * kk + 2 * t;
        mma_bf16_16816(o[n], pa, *reinterpret_cast<const uint32_t*>(vr), *reinterpret_cast<const uint32_t*>(vr + 8));
      }
    }
  }
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
  }
  const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
  const int ra = q0 + warp * 16 + g, rb = ra + 8;
#pragma unroll
  for (int n = 0; n < DT; n++) {
    const size_t col = size_t(h) * DH + 8 * n + 2 * t;
    if (ra < L)
      *reinterpret_cast<__nv_bfloat162*>(out + size_t(ra) * A + col) = __floats2bfloat162_rn(o[n][0] * inv_a, o[n][1] * inv_a);
    if (rb < L)
      *reinterpret_cast<__nv_bfloat162*>(out + size_t(rb) * A + col) = __floats2bfloat162_rn(o[n][2] * inv_b, o[n][3] * inv_b);
  }
}

__global__ void gated_gelu_kernel(const __nv_bfloat16* __restrict__ h, __nv_bfloat16* __restrict__ y, int64_t M,
                                  int64_t F) {
  const int64_t n = M * F;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t m = e / F, f = e % F;
    float g = __bfloat162float(h[m * 2 * F + f]);
    float a = __bfloat162float(h[m * 2 * F + F + f]);
    float gel = 0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
    y[e] = __float2bfloat16(a * gel);
  }
}

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    x[e] += y[e];
}

__global__ void dequant_kernel(const int8_t* __restrict__ q, const float* __restrict__ s, __nv_bfloat16* __restrict__ w,
                               int64_t N, int64_t K, int64_t G) {
  const int64_t n = N * K, ng = K / G;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t row = e / K, k = e % K;
    w[e] = __float2bfloat16(float(q[e]) * s[row * ng + k / G]);
  }
}

// 16 weights per thread: one 16-byte load, two 16-byte stores, one scale (group % 16 == 0, so a chunk never
// straddles two groups). Memory-bound: 3 bytes moved per weight, versus 64-bit index math per weight above.
__global__ void dequant16_kernel(const int8_t* __restrict__ q, const float* __restrict__ s,
                                 __nv_bfloat16* __restrict__ w, int64_t chunks, int64_t chunks_per_row,
                                 int64_t chunks_per_group, int64_t groups_per_row) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = c / chunks_per_row, cr = c - row * chunks_per_row;
    const float sc = __ldg(s + row * groups_per_row + cr / chunks_per_group);
    const int4 v = __ldg(reinterpret_cast<const int4*>(q) + c);
    const int8_t* b = reinterpret_cast<const int8_t*>(&v);
    uint4 o[2];
    uint32_t* op = reinterpret_cast<uint32_t*>(o);
#pragma unroll
    for (int k = 0; k < 8; k++) op[k] = pack_bf16(float(b[2 * k]) * sc, float(b[2 * k + 1]) * sc);
    uint4* dst = reinterpret_cast<uint4*>(w) + 2 * c;
    dst[0] = o[0];
    dst[1] = o[1];
  }
}

// One block per (row, group).
__global__ void quantize_kernel(const __nv_bfloat16* __restrict__ w, int8_t* __restrict__ q, float* __restrict__ s,
                                int64_t K, int64_t G) {
  __shared__ float red[32];
  const int64_t ng = K / G, row = blockIdx.x / ng, g = blockIdx.x % ng;
  const __nv_bfloat16* src = w + row * K + g * G;
  float amax = 0.f;
  for (int64_t j = threadIdx.x; j < G; j += blockDim.x) amax = fmaxf(amax, fabsf(__bfloat162float(src[j])));
  amax = block_max(amax, red);
  const float sc = amax > 0.f ? amax / 127.f : 1.f, inv = 1.f / sc;
  if (threadIdx.x == 0) s[row * ng + g] = sc;
  for (int64_t j = threadIdx.x; j < G; j += blockDim.x) {
    float v = fminf(127.f, fmaxf(-127.f, rintf(__bfloat162float(src[j]) * inv)));
    q[row * K + g * G + j] = int8_t(v);
  }
}

__device__ __forceinline__ float hash_uniform(uint64_t seed, uint64_t index, float bound) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  float u = float(z >> 40) * (1.0f / 16777216.0f);
  return (2.f * u - 1.f) * bound;
}

template <typename T>
__global__ void fill_kernel(T* __restrict__ p, int64_t n, uint64_t seed, float bound) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    p[e] = from_f<T>(hash_uniform(seed, uint64_t(e), bound));
}

__global__ void embed_random_kernel(const int* __restrict__ ids, float* __restrict__ x, int64_t L, int64_t D,
                                    uint64_t seed, float bound) {
  const int64_t n = L * D;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / D, j = e - i * D;
    x[e] = hash_uniform(seed, uint64_t(ids[i]) * uint64_t(D) + uint64_t(j), bound);
  }
}

unsigned elt_blocks(int64_t n) {
  int64_t b = (n + kT5EltThreads - 1) / kT5EltThreads;
  int64_t cap = int64_t(sm_count()) * 32;
  return unsigned(std::max<int64_t>(1, std::min(b, cap)));
}

void expect_contig(const Tensor& t, const char* what) {
  expect_cuda(t, what);
  TD_CHECK(t.is_contiguous(), what, t.describe(), " must be contiguous");
}

}  // namespace

void t5_rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  expect_contig(x, "t5 rmsnorm input");
  expect_contig(weight, "t5 rmsnorm weight");
  expect_contig(y, "t5 rmsnorm output");
  TD_CHECK(x.dtype() == DType::F32, "t5 rmsnorm input", x.describe(), " must be f32");
  const int64_t D = x.size(-1), M = x.numel() / D;
  TD_CHECK(weight.numel() == D && y.numel() == x.numel(), "t5 rmsnorm", "shapes differ: ", x.describe(), ", ",
           weight.describe(), ", ", y.describe());
  if (M == 0) return;
  const float* xp = x.ptr<float>();
  auto launch = [&](auto* wp, auto* yp) {
    rmsnorm_kernel<<<unsigned(M), kT5RowThreads, 0, stream()>>>(xp, wp, yp, int(D), eps);
  };
  bool wb = weight.dtype() == DType::BF16, yb = y.dtype() == DType::BF16;
  TD_CHECK((wb || weight.dtype() == DType::F32) && (yb || y.dtype() == DType::F32), "t5 rmsnorm",
           "weight/output must be bf16 or f32");
  if (wb && yb) launch(weight.ptr<__nv_bfloat16>(), y.ptr<__nv_bfloat16>());
  else if (wb) launch(weight.ptr<__nv_bfloat16>(), y.ptr<float>());
  else if (yb) launch(weight.ptr<float>(), y.ptr<__nv_bfloat16>());
  else launch(weight.ptr<float>(), y.ptr<float>());
  TD_CUDA_LAUNCH_CHECK();
}

void t5_attention(const Tensor& qkv, const Tensor& pos_table, const Tensor& buckets, const Tensor* mask, int num_heads,
                  Tensor& o) {
  expect_contig(qkv, "t5 attention qkv");
  expect_contig(pos_table, "t5 attention position table");
  expect_contig(buckets, "t5 attention buckets");
  expect_contig(o, "t5 attention output");
  TD_CHECK(qkv.dtype() == DType::BF16 && o.dtype() == DType::BF16 && pos_table.dtype() == DType::F32 &&
               buckets.dtype() == DType::I32,
           "t5 attention", "expects bf16 qkv/output, f32 table, i32 buckets");
  const int64_t L = qkv.size(0), A = o.size(-1);
  TD_CHECK(num_heads > 0 && A % num_heads == 0 && qkv.size(-1) == 3 * A && o.size(0) == L, "t5 attention",
           "shapes: qkv ", qkv.describe(), ", out ", o.describe(), ", heads ", num_heads);
  const int Dh = int(A / num_heads);
  TD_CHECK(Dh % 8 == 0 && Dh <= kT5AttnMaxHeadDim, "t5 attention", "head_dim ", Dh, " must be a multiple of 8 and <= ",
           kT5AttnMaxHeadDim);
  TD_CHECK(buckets.numel() == 2 * L - 1, "t5 attention", "buckets must have 2L-1 entries");
  TD_CHECK(pos_table.dim() == 2 && pos_table.size(1) == num_heads, "t5 attention", "position table ",
           pos_table.describe(), " must be [buckets, ", num_heads, "]");
  const int* mp = nullptr;
  if (mask) {
    expect_contig(*mask, "t5 attention mask");
    TD_CHECK(mask->dtype() == DType::I32 && mask->numel() == L, "t5 attention mask", mask->describe(), " must be i32 [L]");
    mp = mask->ptr<int>();
  }
  if (L == 0) return;
  // Tensor-core path: head_dim 32/64/128 with 16-byte aligned rows (always so for tensors from the allocator).
  const bool aligned = (reinterpret_cast<uintptr_t>(qkv.data()) % 16) == 0 && (reinterpret_cast<uintptr_t>(o.data()) % 4) == 0;
  const size_t mma_smem = sizeof(float) * size_t(3 * L - 1);
  if (aligned && (Dh == 32 || Dh == 64 || Dh == 128) && mma_smem <= kT5MmaMaxDynSmem) {
    dim3 grid(unsigned((L + kT5MmaQ - 1) / kT5MmaQ), unsigned(num_heads));
    auto launch = [&](auto kernel) {
      if (mma_smem > 48 * 1024)
        TD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(mma_smem)));
      kernel<<<grid, kT5MmaThreads, mma_smem, stream()>>>(qkv.ptr<__nv_bfloat16>(), pos_table.ptr<float>(),
                                                         buckets.ptr<int>(), mp, o.ptr<__nv_bfloat16>(), int(L),
                                                         num_heads);
    };
    if (Dh == 32) launch(attention_mma_kernel<32>);
    else if (Dh == 64) launch(attention_mma_kernel<64>);
    else launch(attention_mma_kernel<128>);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  const int Lp = int((L + kT5AttnK - 1) / kT5AttnK * kT5AttnK);
  const size_t smem = sizeof(float) * (size_t(kT5AttnQ + kT5AttnK) * (Dh + 1) + size_t(kT5AttnQ) * Lp);
  const size_t max_smem = device_props().sharedMemPerBlockOptin;
  TD_CHECK(smem <= max_smem, "t5 attention", "sequence of ", L, " tokens needs ", smem,
           " bytes of shared memory per block; this GPU allows ", max_smem);
  TD_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  dim3 grid(unsigned((L + kT5AttnQ - 1) / kT5AttnQ), unsigned(num_heads));
  attention_kernel<<<grid, kT5AttnThreads, smem, stream()>>>(qkv.ptr<__nv_bfloat16>(), pos_table.ptr<float>(),
                                                             buckets.ptr<int>(), mp, o.ptr<__nv_bfloat16>(), int(L),
                                                             num_heads, Dh, Lp);
  TD_CUDA_LAUNCH_CHECK();
}

void t5_gated_gelu(const Tensor& h, Tensor& y) {
  expect_contig(h, "t5 ffn hidden");
  expect_contig(y, "t5 ffn output");
  TD_CHECK(h.dtype() == DType::BF16 && y.dtype() == DType::BF16, "t5 gated gelu", "expects bf16");
  const int64_t F = y.size(-1), M = y.numel() / F;
  TD_CHECK(h.size(-1) == 2 * F && h.numel() == 2 * y.numel(), "t5 gated gelu", "h ", h.describe(), " must be [M, 2F] for y ",
           y.describe());
  if (M == 0) return;
  gated_gelu_kernel<<<elt_blocks(M * F), kT5EltThreads, 0, stream()>>>(h.ptr<__nv_bfloat16>(), y.ptr<__nv_bfloat16>(), M, F);
  TD_CUDA_LAUNCH_CHECK();
}

void t5_add_inplace(Tensor& x, const Tensor& y) {
  expect_contig(x, "t5 residual");
  expect_contig(y, "t5 residual update");
  TD_CHECK(x.dtype() == DType::F32 && y.dtype() == DType::F32 && x.numel() == y.numel(), "t5 residual",
           "expects two f32 tensors of one size");
  if (x.numel() == 0) return;
  add_kernel<<<elt_blocks(x.numel()), kT5EltThreads, 0, stream()>>>(x.ptr<float>(), y.ptr<float>(), x.numel());
  TD_CUDA_LAUNCH_CHECK();
}

static void dequant_on(cudaStream_t st, const Tensor& q, const Tensor& scales, int64_t group, Tensor& w);

void t5_dequant_int8(const Tensor& q, const Tensor& scales, int64_t group, Tensor& w) { dequant_on(stream(), q, scales, group, w); }

static void dequant_on(cudaStream_t st, const Tensor& q, const Tensor& scales, int64_t group, Tensor& w) {
  expect_contig(q, "t5 int8 weight");
  expect_contig(scales, "t5 int8 scales");
  expect_contig(w, "t5 dequantized weight");
  TD_CHECK(q.dtype() == DType::I8 && scales.dtype() == DType::F32 && w.dtype() == DType::BF16 && q.dim() == 2,
           "t5 dequant", "expects i8 [N,K], f32 scales, bf16 out");
  const int64_t N = q.size(0), K = q.size(1);
  TD_CHECK(group > 0 && K % group == 0 && scales.numel() == N * (K / group) && w.numel() == N * K, "t5 dequant",
           "shapes: ", q.describe(), ", ", scales.describe(), ", group ", group);
  if (N * K == 0) return;
  if (K % 16 == 0 && group % 16 == 0 && reinterpret_cast<uintptr_t>(q.data()) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(w.data()) % 16 == 0) {
    const int64_t chunks = N * K / 16;
    // Enough blocks to cover the chunks once (no grid-stride tail) up to a cap of many waves.
    const int64_t blocks = std::min<int64_t>((chunks + kT5EltThreads - 1) / kT5EltThreads, int64_t(sm_count()) * 64);
    dequant16_kernel<<<unsigned(std::max<int64_t>(1, blocks)), kT5EltThreads, 0, st>>>(
        q.ptr<int8_t>(), scales.ptr<float>(), w.ptr<__nv_bfloat16>(), chunks, K / 16, group / 16, K / group);
    TD_CUDA_LAUNCH_CHECK();
    return;
  }
  dequant_kernel<<<elt_blocks(N * K), kT5EltThreads, 0, st>>>(q.ptr<int8_t>(), scales.ptr<float>(),
                                                                    w.ptr<__nv_bfloat16>(), N, K, group);
  TD_CUDA_LAUNCH_CHECK();
}

// Slot b of the widener: its bf16 buffer, `ready` (recorded on the side stream after a widening into it) and
// `free` (recorded on the engine stream after the GEMM that read it).
struct T5Int8Widener::Impl {
  cudaStream_t side = nullptr;
  cudaEvent_t start = nullptr, ready[2] = {nullptr, nullptr}, free[2] = {nullptr, nullptr};
  Tensor buf[2];
  int64_t shape[2][2] = {{0, 0}, {0, 0}};
  int64_t next = 0;  // index of the next matrix enqueue() expects

  // Runs before buf[] is destroyed: the buffers return to the engine stream's allocator, so nothing queued on the
  // side stream may outlive them, even when a forward pass is abandoned halfway (an error between enqueue and
  // acquire). Also the cleanup of a half-built widener.
  ~Impl() {
    if (side) {
      cudaEvent_t done = nullptr;
      if (cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess &&
          cudaEventRecord(done, side) == cudaSuccess && cudaStreamWaitEvent(stream(), done, 0) == cudaSuccess) {
      } else {
        cudaStreamSynchronize(side);
      }
      if (done) cudaEventDestroy(done);
      cudaStreamDestroy(side);  // returns at once; the stream is torn down when its work completes
    }
    if (start) cudaEventDestroy(start);
    for (int b = 0; b < 2; b++) {
      if (ready[b]) cudaEventDestroy(ready[b]);
      if (free[b]) cudaEventDestroy(free[b]);
    }
  }
};

T5Int8Widener::T5Int8Widener(int64_t max_elems) : impl_(new Impl) {
  Impl& m = *impl_;
  for (int b = 0; b < 2; b++) m.buf[b] = Tensor::empty({max_elems}, DType::BF16, Device::CUDA);
  TD_CUDA_CHECK(cudaStreamCreateWithFlags(&m.side, cudaStreamNonBlocking));
  TD_CUDA_CHECK(cudaEventCreateWithFlags(&m.start, cudaEventDisableTiming));
  for (int b = 0; b < 2; b++) {
    TD_CUDA_CHECK(cudaEventCreateWithFlags(&m.ready[b], cudaEventDisableTiming));
    TD_CUDA_CHECK(cudaEventCreateWithFlags(&m.free[b], cudaEventDisableTiming));
  }
  // The buffers come from the engine stream's caching allocator: their memory may still be in use by work queued
  // there before this point, so the side stream starts after it.
  TD_CUDA_CHECK(cudaEventRecord(m.start, stream()));
  TD_CUDA_CHECK(cudaStreamWaitEvent(m.side, m.start, 0));
}

T5Int8Widener::~T5Int8Widener() = default;

void T5Int8Widener::enqueue(int64_t n, const Tensor& q, const Tensor& scales, int64_t group) {
  Impl& m = *impl_;
  TD_CHECK(n == m.next, "t5 int8 widener", "matrices must be enqueued in order (got ", n, ", expected ", m.next, ")");
  const int b = int(n & 1);
  TD_CHECK(q.dim() == 2 && q.numel() <= m.buf[b].numel(), "t5 int8 widener", q.describe(), " exceeds the buffer of ",
           m.buf[b].numel(), " elements");
  // Buffer b was last read by GEMM n-2 (nothing recorded yet for n < 2: the wait is then a no-op).
  TD_CUDA_CHECK(cudaStreamWaitEvent(m.side, m.free[b], 0));
  Tensor w = m.buf[b].slice(0, 0, q.numel()).view({q.size(0), q.size(1)});
  dequant_on(m.side, q, scales, group, w);
  TD_CUDA_CHECK(cudaEventRecord(m.ready[b], m.side));
  m.shape[b][0] = q.size(0);
  m.shape[b][1] = q.size(1);
  m.next = n + 1;
}

Tensor T5Int8Widener::acquire(int64_t n) {
  Impl& m = *impl_;
  TD_CHECK(n < m.next && n + 2 >= m.next, "t5 int8 widener", "matrix ", n, " is not in a buffer (next ", m.next, ")");
  const int b = int(n & 1);
  TD_CUDA_CHECK(cudaStreamWaitEvent(stream(), m.ready[b], 0));
  return m.buf[b].slice(0, 0, m.shape[b][0] * m.shape[b][1]).view({m.shape[b][0], m.shape[b][1]});
}

void T5Int8Widener::release(int64_t n) {
  TD_CUDA_CHECK(cudaEventRecord(impl_->free[n & 1], stream()));
}

void t5_quantize_int8(const Tensor& w, int64_t group, Tensor& q, Tensor& scales) {
  expect_contig(w, "t5 weight to quantize");
  expect_contig(q, "t5 int8 weight");
  expect_contig(scales, "t5 int8 scales");
  TD_CHECK(w.dtype() == DType::BF16 && q.dtype() == DType::I8 && scales.dtype() == DType::F32 && w.dim() == 2,
           "t5 quantize", "expects bf16 [N,K] in, i8 and f32 out");
  const int64_t N = w.size(0), K = w.size(1);
  TD_CHECK(group > 0 && K % group == 0 && q.numel() == N * K && scales.numel() == N * (K / group), "t5 quantize",
           "shapes: ", w.describe(), ", ", q.describe(), ", ", scales.describe(), ", group ", group);
  const int64_t blocks = N * (K / group);
  if (blocks == 0) return;
  TD_CHECK(blocks < (int64_t(1) << 31), "t5 quantize", "too many groups");
  quantize_kernel<<<unsigned(blocks), 128, 0, stream()>>>(w.ptr<__nv_bfloat16>(), q.ptr<int8_t>(), scales.ptr<float>(),
                                                          K, group);
  TD_CUDA_LAUNCH_CHECK();
}

void t5_fill_uniform(Tensor& t, uint64_t seed, float bound) {
  expect_contig(t, "t5 random fill");
  const int64_t n = t.numel();
  if (n == 0) return;
  if (t.dtype() == DType::BF16)
    fill_kernel<<<elt_blocks(n), kT5EltThreads, 0, stream()>>>(t.ptr<__nv_bfloat16>(), n, seed, bound);
  else if (t.dtype() == DType::F32)
    fill_kernel<<<elt_blocks(n), kT5EltThreads, 0, stream()>>>(t.ptr<float>(), n, seed, bound);
  else
    fail("t5 random fill", cat(t.describe(), ": bf16 or f32 only"));
  TD_CUDA_LAUNCH_CHECK();
}

void t5_embed_random(const Tensor& ids, uint64_t seed, float bound, Tensor& x) {
  expect_contig(ids, "t5 token ids");
  expect_contig(x, "t5 embeddings");
  TD_CHECK(ids.dtype() == DType::I32 && x.dtype() == DType::F32 && x.dim() == 2 && x.size(0) == ids.numel(),
           "t5 random embedding", "expects i32 ids [L] and f32 out [L, D], got ", ids.describe(), ", ", x.describe());
  const int64_t L = x.size(0), D = x.size(1);
  if (L * D == 0) return;
  embed_random_kernel<<<elt_blocks(L * D), kT5EltThreads, 0, stream()>>>(ids.ptr<int>(), x.ptr<float>(), L, D, seed,
                                                                         bound);
  TD_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace td
