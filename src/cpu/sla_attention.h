// CPU fp32 reference of sparse-linear attention (SLA) and an emulation of its quantized kernel (SageSLA).
// Semantics (docs/attention.md, turbodiffusion.md §3): q, k, v [L, H, Dh] f32 host tensors, after RoPE.
//   block map : Pq = mean-pool(q, bq), Pk = mean-pool(k - mean_L(k), bk), S = Pq·Pk^T (no scale); keep the
//               sla_topk_count() best key blocks per (head, query block); ties go to the lower block index.
//   sparse    : softmax(q k^T * scale) over the keys of the selected blocks only.
//   linear    : phi = softmax over Dh; o_l = phi(q)(phi(k)^T v) / (1e-5 + phi(q)·sum_L phi(k)); y = o_l W^T + b.
//   output    : sparse + linear.
// The block table is an I32 tensor [H, nq, kc] of selected key-block indices, ascending within each row; the CUDA
// backend produces the same layout so the two can be compared directly.
#pragma once

#include "core/tensor.h"

namespace td {
namespace cpu {

// Number of key blocks kept per query block: int(topk * nk) clamped to [1, nk]. A 1e-4 slack makes decimal ratios
// whose float image lies just below an integer boundary (0.3f * 10 = 2.99999...) keep the count a reader expects.
int sla_topk_count(float topk, int nk);

// Block map. scores (optional): f32 [H, nq, nk] of the block scores S, for tie analysis in tests.
Tensor sla_block_map(const Tensor& q, const Tensor& k, int bq, int bk, float topk, Tensor* scores = nullptr);

// Sparse branch in fp32 over a given table (I32 [H, nq, kc], any order, duplicates not allowed). o is overwritten.
void sla_sparse(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& table, int bq, int bk, float scale,
                Tensor& o);

// SageAttention's int8 code of x with this block scale: round(x / scale) half away from zero, clamped to +-127 (the
// CUDA kernels' int8_half_away_bits rounds the same way).
int8_t sagesla_quant_i8(float x, float scale);

// The same sparse branch quantized the way the SageSLA kernels do it, in plain C++ (see docs/attention.md):
// int8 q per (bq tokens x head) block, int8 (k - mean_L k) per (bk x head) block (scale amax/127 + 1e-7, round half
// away), int32 q·k, online softmax in base 2 over the selected blocks in ascending order, P = e4m3(448·exp2(s - m))
// with the row sum taken from the unquantized p, V as e4m3 with one scale per (head, channel) = amax_L|v| / 448,
// fp32 accumulation of each key block's P·V added into an fp32 accumulator.
void sagesla_sparse_emulated(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& table, int bq, int bk,
                             float scale, Tensor& o);

// Adds the linear branch to o (o += proj_l(o_l)). w: [Dh, Dh] f32 or null (identity), b: [Dh] f32 or null (zero).
void sla_linear_add(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* w, const Tensor* b, Tensor& o);

// Whole op on the CPU. quantized = false: SLA (fp32 sparse branch); true: SageSLA emulation.
void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, int bq, int bk, float topk,
                   float scale, const Tensor* proj_w, const Tensor* proj_b, bool quantized);

}  // namespace cpu
}  // namespace td
