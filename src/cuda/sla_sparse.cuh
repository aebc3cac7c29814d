// The block-sparse attention kernel of SLA / SageSLA (mma.sync path) and its fused linear-branch epilogue.
// Internal to src/cuda/sla_*.cu: sla_attention.cu prepares the operands, sla_sparse.cu launches the kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>

namespace td {
namespace cuda {
namespace sla {

struct SparseArgs {
  int L = 0, H = 0, D = 0, bq = 0, bk = 0, nq = 0, nk = 0, kc = 0;
  bool quantized = false;
  // 0 auto, 1 mma.sync, 2 wgmma (sagesla 64x128 / 128x64, Dh128, sm_90 only), 3 pipelined wgmma, 4 compact wgmma
  // (both sagesla 64x128, Dh128, sm_90 only; need tiled_kv)
  int kernel = 0;
  bool tiled_kv = false;  // kq, vt and kvwt in the bulk-copy kernels' layouts (sla_attention.cu: kquant / vquant /
                          // fold TILED)
  float scale_log2 = 0.f;  // softmax scale * log2(e)
  const __nv_bfloat16* q = nullptr;  // [L, H, D]
  const __nv_bfloat16* k = nullptr;  // [L, H, D]       (SLA)
  const __nv_bfloat16* v = nullptr;  // [L, H, D]       (SLA)
  const int8_t* kq = nullptr;        // [H, nk*bk, D]   (SageSLA) int8 of k - mean_L(k), zero past L
  const float* kscale = nullptr;     // [H, nk]         (SageSLA)
  const uint8_t* vt = nullptr;       // [H, D, nk*bk]   (SageSLA) e4m3, transposed, tokens permuted per 16
  const float* vmax = nullptr;       // [H, D]          (SageSLA) amax_L |v|; scale = vmax / 448
  const int32_t* table = nullptr;    // [H, nq, kc] ascending key-block indices
  // Linear branch (null kvwt: sparse branch only). kvwt[h] = (KV[h] W^T)^T as bf16 [n][d], z = sum_L phi(k).
  const __nv_bfloat16* kvwt = nullptr;  // [H, D, D]
  const float* z = nullptr;             // [H, D]
  const float* bias = nullptr;          // [D] or null
  __nv_bfloat16* o = nullptr;           // [L, H, D]
  // Instead of o (pipelined kernel only): the W8A8 activation quantization of the output, one 128-channel group
  // per (token, head) (D = 128): int8 [L, H, D] and f32 scales [L, H].
  int8_t* oq = nullptr;
  float* oscale = nullptr;
};

// Whether launch_sparse will run a bulk-copy sm_90 kernel (compact or pipelined) for these arguments (then kq / vt
// must be tiled).
bool sparse_wants_tiled_kv(const SparseArgs& a);

// Throws td::Error for a geometry that is not compiled.
void launch_sparse(const SparseArgs& a, cudaStream_t stream);

}  // namespace sla
}  // namespace cuda
}  // namespace td
