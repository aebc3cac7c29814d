// Dense attention, FlashAttention-2 style, on bf16 tensor cores (mma.sync.m16n8k16, fp32 accumulation).
//
// One block computes kBlockM query rows of one head. Q is loaded once into shared memory; K and V tiles of kBlockN
// keys stream through a two-stage cp.async pipeline (tile j+1 loads while tile j is computed). Per tile, each warp
// computes S = Q K^T for its 32 rows, updates the running row max / row sum (online softmax in the log2 domain:
// softmax_scale * log2(e) is folded into one FFMA before ex2), rescales its O accumulators and adds P V, with P
// taken straight from the S accumulators as the A operand (no shared-memory round trip).
//
// Shared-memory tiles are rows of head_dim bf16 split into 16-byte chunks; chunk c of row r lives at chunk
// c ^ (r & 7), so the 8 row addresses of every ldmatrix phase hit 8 different bank groups.
//
// Bounds: rows past Lq / Lk are zero-filled by cp.async (src-size 0, the address is clamped to row 0 so nothing
// out of bounds is read), keys past Lk get S = -inf, and rows past Lq are not stored. Tiles: attention_config.h.
#include "cuda/attention.h"

#include <cmath>

#include "cuda/act_int8.cuh"
#include "cuda/attention_config.h"
#include "cuda/attention_sm90.h"
#include "cuda/op_util.cuh"

namespace td {
namespace cuda {

namespace {

using bf16 = __nv_bfloat16;

// The Hopper kernel's arguments (attention_sm90.h: pointers, strides, lengths, scale; oq / oscale, with head_dim 128,
// in place of o for the W8A8 activation of the output) plus this kernel's lazy-rescale threshold.
struct AttnParams : DenseAttnArgs {
  float rescale_slack_log2;  // kAttentionRescaleSlackLog2 unless a benchmark set another (-inf: always rescale)
};

// ---- PTX wrappers ----

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy; with pred false nothing is read and the destination is zero-filled.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred) {
  const int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a · b for one 16x8x16 tile: a is the 16x16 row-major A fragment, (b0, b1) the 16x8 column-major B fragment.
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Element offset of 16-byte chunk `chunk` of row `row` in a swizzled [rows, D] bf16 tile.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Async copy of rows [0, ROWS) of a [*, D] global tile (row stride ld) into a swizzled shared tile; rows >= valid
// are zero-filled without touching global memory. THREADS is a multiple of D/8, so each thread keeps one chunk
// column and steps down the rows by a constant: one pointer and one shared offset, advanced linearly (this keeps
// the per-thread address state to a few registers; the attention kernel has none to spare).
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* g, int64_t ld, int valid, int tid) {
  constexpr int kChunks = D / 8;
  constexpr int kRowStep = THREADS / kChunks;
  static_assert(THREADS % kChunks == 0 && ROWS % kRowStep == 0, "tile copy must divide evenly among threads");
  static_assert(kRowStep % 8 == 0, "the row step must keep (row & 7), i.e. the swizzle, constant");
  const int r0 = tid / kChunks, c = tid % kChunks;
  const bf16* src = g + int64_t(r0) * ld + c * 8;
  const int64_t step = int64_t(kRowStep) * ld;
  uint32_t dst = smem_u32(s + swz<D>(r0, c));  // (r0 + i*kRowStep) & 7 == r0 & 7: the swizzle is the same
#pragma unroll
  for (int i = 0; i < ROWS / kRowStep; i++) {
    const bool ok = r0 + i * kRowStep < valid;
    cp_async16(dst, ok ? src : g, ok);
    src += step;
    dst += kRowStep * D * sizeof(bf16);
  }
}

// SPLIT: K and V of a tile are separate cp.async groups; the S = Q K^T phase waits only for K, so V's load overlaps
// the first matmul and the softmax (one more barrier per tile).
// MINB: blocks per SM the register budget is sized for (__launch_bounds__), see attention_config.h.
template <int D, int BM, int BN, int WARPS, bool SPLIT, int MINB>
__global__ void __launch_bounds__(WARPS * 32, MINB) flash_attention_fwd(const AttnParams p) {
  constexpr int THREADS = WARPS * 32;
  constexpr int MT = BM / WARPS / 16;  // m16 tiles per warp
  constexpr int NT = BN / 8;           // n8 tiles of S per warp row-tile
  constexpr int DT = D / 8;            // n8 tiles of O
  static_assert(BM % (WARPS * 16) == 0 && BN % 16 == 0 && D % 16 == 0, "bad attention tile");

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + BM * D;      // 2 stages
  bf16* sV = sK + 2 * BN * D;  // 2 stages

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;  // mma fragment coordinates: row group, column pair
  const int q0 = blockIdx.x * BM, h = blockIdx.y;
  const bf16* qg = p.q + int64_t(h) * p.q_head + int64_t(q0) * p.q_tok;
  const bf16* kg = p.k + int64_t(h) * p.k_head;
  const bf16* vg = p.v + int64_t(h) * p.v_head;
  const int n_tiles = (p.lk + BN - 1) / BN;

  load_tile<BM, D, THREADS>(sQ, qg, p.q_tok, p.lq - q0, tid);
  load_tile<BN, D, THREADS>(sK, kg, p.k_tok, p.lk, tid);
  if (SPLIT) cp_async_commit();
  load_tile<BN, D, THREADS>(sV, vg, p.v_tok, p.lk, tid);
  cp_async_commit();

  float acc[MT][DT][4];
  float row_max[MT][2], row_sum[MT][2];  // per thread: rows g and g+8 of each m-tile; row_max in log2 units
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int dt = 0; dt < DT; dt++) acc[mt][dt][0] = acc[mt][dt][1] = acc[mt][dt][2] = acc[mt][dt][3] = 0.f;
    row_max[mt][0] = row_max[mt][1] = -INFINITY;
    row_sum[mt][0] = row_sum[mt][1] = 0.f;
  }
  const int wrow = warp * MT * 16;
  // Per-lane ldmatrix byte offsets for k-step 0 / d-pair 0. A later step's 16-byte chunk index differs by an even
  // constant that only touches chunk bits, and XOR-swizzling commutes with that: offset(step) = off0 ^ (2*step << 4).
  // Keeping one offset per operand (instead of one per unrolled step) saves ~20 registers.
  const uint32_t sQ_u = smem_u32(sQ), sK_u = smem_u32(sK), sV_u = smem_u32(sV);
  const uint32_t q_off0 = uint32_t(swz<D>(wrow + (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4)) * 2;
  const uint32_t k_off0 = uint32_t(swz<D>((lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1)) * 2;
  const uint32_t v_off0 = uint32_t(swz<D>((lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4)) * 2;

  for (int j = 0; j < n_tiles; j++) {
    const int stage = j & 1;
    // Groups are committed even when empty, so the wait counts below always refer to tile j.
    const int k1 = (j + 1) * BN;
    if (j + 1 < n_tiles)
      load_tile<BN, D, THREADS>(sK + (stage ^ 1) * BN * D, kg + int64_t(k1) * p.k_tok, p.k_tok, p.lk - k1, tid);
    if (SPLIT) cp_async_commit();
    if (j + 1 < n_tiles)
      load_tile<BN, D, THREADS>(sV + (stage ^ 1) * BN * D, vg + int64_t(k1) * p.v_tok, p.v_tok, p.lk - k1, tid);
    cp_async_commit();
    if (SPLIT)
      cp_async_wait<3>();  // K_j landed (V_j, K_j+1, V_j+1 may be in flight)
    else
      cp_async_wait<1>();  // K_j and V_j landed
    __syncthreads();
    const uint32_t cK = sK_u + stage * BN * D * 2;
    const uint32_t cV = sV_u + stage * BN * D * 2;

    // S = Q K^T (raw scores, fp32)
    float s[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int nt = 0; nt < NT; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        ldmatrix_x4(a[mt], sQ_u + mt * 16 * D * 2 + (q_off0 ^ (kk * 2 << 4)));
      }
#pragma unroll
      for (int np = 0; np < NT / 2; np++) {
        uint32_t b[4];
        ldmatrix_x4(b, cK + np * 16 * D * 2 + (k_off0 ^ (kk * 2 << 4)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          mma_bf16_16816(s[mt][2 * np], a[mt], b[0], b[1]);
          mma_bf16_16816(s[mt][2 * np + 1], a[mt], b[2], b[3]);
        }
      }
    }

    // Keys past Lk (only in the last tile) take no probability mass.
    if ((j + 1) * BN > p.lk) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            if (j * BN + nt * 8 + 2 * t4 + (e & 1) >= p.lk) s[mt][nt][e] = -INFINITY;
    }

    // Online softmax. Each row's 64 scores are spread over the 4 threads of a quad (same g).
    // Lazy rescaling: the running max (and with it O and the row sum) is only moved when some row of the warp sees
    // a score above its max by more than p.rescale_slack_log2 (log2 units). Otherwise P = 2^(s - m) with
    // the stale m is at most 2^slack, exact in fp32 and bf16 (same relative precision), and the final 1/l undoes
    // any common factor; this skips the 2 x DT multiplies per row on almost every tile after the first few.
    float mx[MT][2];
    bool need = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float m = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) m = fmaxf(m, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        mx[mt][r] = m * p.scale_log2;  // scale_log2 > 0, so this is the max of the scaled scores
        need |= mx[mt][r] > row_max[mt][r] + p.rescale_slack_log2;  // always true on the first tile
      }
    }
    if (__any_sync(0xffffffffu, need)) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
          // Every tile holds at least one real key, so m_new is finite; alpha = 0 on the first tile.
          const float m_new = fmaxf(row_max[mt][r], mx[mt][r]);
          const float alpha = exp2_approx(row_max[mt][r] - m_new);
          row_max[mt][r] = m_new;
          row_sum[mt][r] *= alpha;
#pragma unroll
          for (int dt = 0; dt < DT; dt++) {
            acc[mt][dt][2 * r] *= alpha;
            acc[mt][dt][2 * r + 1] *= alpha;
          }
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const float m = row_max[mt][r];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; e++) {
            const float pv = exp2_approx(fmaf(s[mt][nt][e], p.scale_log2, -m));
            s[mt][nt][e] = pv;
            row_sum[mt][r] += pv;  // thread-partial; the quad reduction happens once at the end
          }
        }
      }
    }

    if (SPLIT) {
      cp_async_wait<2>();  // V_j landed
      __syncthreads();
    }

    // O += P V. The S accumulator layout of two adjacent n8 tiles is exactly the A fragment of one k16 step.
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        a[mt][0] = pack_bf16x2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = pack_bf16x2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = pack_bf16x2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = pack_bf16x2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; dp++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, cV + kk * 16 * D * 2 + (v_off0 ^ (dp * 2 << 4)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          mma_bf16_16816(acc[mt][2 * dp], a[mt], b[0], b[1]);
          mma_bf16_16816(acc[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // everyone is done with this stage before the next iteration refills it
  }

  // Normalise and store. Each quad writes 16 contiguous bytes per n8 tile.
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = 1.f / l;
      const int row = q0 + wrow + mt * 16 + g + 8 * r;
      if (D == 128 && p.oq) {
        // quantize_act_int8's rounding from the fp32 values (scale amax / 128, nearest even, saturate); all four
        // threads of the quad take part in the max, so no row is skipped before it.
        float amax = 0.f;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
          amax = fmaxf(amax, fmaxf(fabsf(acc[mt][dt][2 * r]), fabsf(acc[mt][dt][2 * r + 1])) * inv);
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2)), 1e-8f);
        const float qinv = act_int8_inv(amax) * inv;
        // The codes go to the (now free) Q tile as [BM][128 B] rows, 16-byte chunk c at c ^ (row & 7), and leave as
        // 16-byte stores below (2-byte stores straight to memory cost more than the pass this saves).
        const int lrow = wrow + mt * 16 + g + 8 * r;
        unsigned char* srow = reinterpret_cast<unsigned char*>(sQ) + lrow * D;
#pragma unroll
        for (int dt = 0; dt < DT; dt++) {
          *reinterpret_cast<uint16_t*>(srow + (((dt / 2) ^ (lrow & 7)) << 4) + (dt % 2) * 8 + 2 * t4) =
              act_int8_pack2(acc[mt][dt][2 * r], acc[mt][dt][2 * r + 1], qinv);
        }
        if (t4 == 0 && row < p.lq) p.oscale[int64_t(row) * (p.o_tok / D) + h] = act_int8_scale(amax);
        continue;
      }
      if (row < p.lq) {
        bf16* og = p.o + int64_t(row) * p.o_tok + int64_t(h) * p.o_head + 2 * t4;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
          *reinterpret_cast<uint32_t*>(og + dt * 8) =
              pack_bf16x2(acc[mt][dt][2 * r] * inv, acc[mt][dt][2 * r + 1] * inv);
      }
    }
  }
  if (D == 128 && p.oq) {
    __syncthreads();
    const unsigned char* st = reinterpret_cast<const unsigned char*>(sQ);
    for (int idx = tid; idx < BM * (D / 16); idx += THREADS) {
      const int lrow = idx / (D / 16), c = idx % (D / 16), row = q0 + lrow;
      if (row >= p.lq) continue;
      const uint4 val = *reinterpret_cast<const uint4*>(st + lrow * D + ((c ^ (lrow & 7)) << 4));
      *reinterpret_cast<uint4*>(p.oq + (int64_t(row) * (p.o_tok / D) + h) * D + c * 16) = val;  // o_tok = heads * D
    }
  }
}

template <int D, int BM, int BN, int WARPS, bool SPLIT, int MINB>
void launch(const AttnParams& p, int heads) {
  auto kernel = flash_attention_fwd<D, BM, BN, WARPS, SPLIT, MINB>;
  constexpr size_t smem = size_t(BM + 4 * BN) * D * sizeof(bf16);
  static const bool configured = [&] {
    TD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    return true;
  }();
  (void)configured;
  dim3 grid(ceil_div(p.lq, BM), unsigned(heads));
  kernel<<<grid, WARPS * 32, smem, stream()>>>(p);
  TD_CUDA_LAUNCH_CHECK();
}

float g_rescale_slack_log2 = kAttentionRescaleSlackLog2;

struct Variant {
  int head_dim;
  const char* name;
  void (*fn)(const AttnParams&, int);
};

#define TD_ATTN_VARIANT_ENTRY(D, BM, BN, W, SPLIT, MINB) \
  {D, "d" #D "_" #BM "x" #BN "_w" #W "_split" #SPLIT "_mb" #MINB, &launch<D, BM, BN, W, SPLIT, MINB>},
const Variant kVariants[] = {TD_ATTENTION_VARIANTS(TD_ATTN_VARIANT_ENTRY)};
#undef TD_ATTN_VARIANT_ENTRY
constexpr int kNumVariants = int(sizeof(kVariants) / sizeof(kVariants[0]));

void check_qkv(const Tensor& t, const char* what, int64_t H, int64_t D) {
  expect_cuda(t, what);
  expect_dtype(t, DType::BF16, what);
  TD_CHECK(t.dim() == 3, what, t.describe(), " must be [L, heads, head_dim]");
  TD_CHECK(t.size(1) == H && t.size(2) == D, what, t.describe(), " must have ", H, " heads of ", D);
  TD_CHECK(t.strides()[2] == 1, what, t.describe(), ": head_dim must be contiguous");
  TD_CHECK(t.strides()[0] % 8 == 0 && t.strides()[1] % 8 == 0 && reinterpret_cast<uintptr_t>(t.data()) % 16 == 0,
           what, t.describe(), ": token/head strides must be multiples of 8 elements and the data 16-byte aligned");
  TD_CHECK(t.size(0) < (int64_t(1) << 30), what, t.describe(), ": sequence too long");
}

// o null: the caller sets oq / oscale (contiguous [lq, heads, D] layout assumed in the strides).
AttnParams make_params(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* o, const AttentionOptions& opts) {
  TD_CHECK(q.defined() && q.dim() == 3, "attention q", (q.defined() ? q.describe() : "none"),
           " must be [L, heads, head_dim]");
  const int64_t H = q.size(1), D = q.size(2);
  TD_CHECK(D == 64 || D == 128, "attention q", q.describe(), ": head_dim must be 64 or 128 on CUDA");
  TD_CHECK(H >= 1 && H <= 65535, "attention q", q.describe(), ": bad head count");
  check_qkv(q, "attention q", H, D);
  check_qkv(k, "attention k", H, D);
  check_qkv(v, "attention v", H, D);
  if (o) {
    check_qkv(*o, "attention output", H, D);
    TD_CHECK(o->size(0) == q.size(0), "attention output", o->describe(), " must have as many tokens as q ",
             q.describe());
  }
  TD_CHECK(k.size(0) == v.size(0), "attention v", v.describe(), " must have as many tokens as k ", k.describe());
  TD_CHECK(k.size(0) >= 1, "attention k", "needs at least one key");
  AttnParams p;
  p.q = q.ptr<bf16>();
  p.k = k.ptr<bf16>();
  p.v = v.ptr<bf16>();
  p.o = o ? o->ptr<bf16>() : nullptr;
  p.oq = nullptr;
  p.oscale = nullptr;
  p.q_tok = q.strides()[0], p.k_tok = k.strides()[0], p.v_tok = v.strides()[0];
  p.q_head = q.strides()[1], p.k_head = k.strides()[1], p.v_head = v.strides()[1];
  p.o_tok = o ? o->strides()[0] : H * D;
  p.o_head = o ? o->strides()[1] : D;
  p.lq = int(q.size(0));
  p.lk = int(k.size(0));
  p.heads = int(H);
  const float scale = opts.scale > 0.f ? opts.scale : float(1.0 / std::sqrt(double(D)));
  p.scale_log2 = scale * 1.4426950408889634f;
  p.rescale_slack_log2 = g_rescale_slack_log2;
  return p;
}

}  // namespace

namespace {
void launch_default(const AttnParams& p, const Tensor& q) {
  const int H = int(q.size(1));
  if (attention_sm90_applies(int(q.size(2)))) {
    attention_sm90(p);
    return;
  }
  if (q.size(2) == 128) {
    using T = AttentionTile<128>;
    launch<128, T::kBlockM, T::kBlockN, T::kWarps, T::kSplitWait, T::kMinBlocks>(p, H);
  } else {
    using T = AttentionTile<64>;
    launch<64, T::kBlockM, T::kBlockN, T::kWarps, T::kSplitWait, T::kMinBlocks>(p, H);
  }
}
}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts) {
  const AttnParams p = make_params(q, k, v, &o, opts);
  if (p.lq == 0) return;
  launch_default(p, q);
}

void attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out_q, Tensor& out_scale,
                    const AttentionOptions& opts) {
  AttnParams p = make_params(q, k, v, nullptr, opts);
  const int64_t L = q.size(0), H = q.size(1);
  TD_CHECK(q.size(2) == 128, "attention q", q.describe(), ": an int8 output needs head_dim 128");
  expect_int8_attention_output(out_q, out_scale, L, H);
  p.oq = out_q.ptr<int8_t>();
  p.oscale = out_scale.ptr<float>();
  if (p.lq == 0) return;
  launch_default(p, q);
}

void set_attention_rescale_slack_log2(float slack) { g_rescale_slack_log2 = slack; }

int attention_variant_count() { return kNumVariants; }

const char* attention_variant_name(int i) { return i >= 0 && i < kNumVariants ? kVariants[i].name : "?"; }

int attention_variant_head_dim(int i) { return i >= 0 && i < kNumVariants ? kVariants[i].head_dim : 0; }

void attention_variant(int i, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o,
                       const AttentionOptions& opts) {
  TD_CHECK(i >= 0 && i < kNumVariants, "attention variant", "index ", i, " out of range");
  const AttnParams p = make_params(q, k, v, &o, opts);
  TD_CHECK(q.size(2) == kVariants[i].head_dim, "attention variant", kVariants[i].name, " is for head_dim ",
           kVariants[i].head_dim, ", got ", q.describe());
  if (p.lq == 0) return;
  kVariants[i].fn(p, int(q.size(1)));
}

}  // namespace cuda
}  // namespace td
