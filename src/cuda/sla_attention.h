// CUDA sparse-linear attention (SLA, SageSLA). Plain C++ interface (no CUDA types) for src/ops/sla.cpp and tests.
// Semantics are those of src/cpu/sla_attention.h; design notes in docs/attention.md.
#pragma once

#include "core/tensor.h"

namespace td {
namespace cuda {

struct SlaParams {
  bool quantized = false;  // false: SLA (bf16 mma), true: SageSLA (int8 Q·K, e4m3 P·V; bf16 P·V below sm_89)
  int bq = 128, bk = 64;   // block geometry; (128, 64) and (64, 128) are compiled
  float topk = 0.1f;
  float scale = 0.f;  // 0 -> 1/sqrt(Dh)
  const Tensor* proj_w = nullptr;  // [Dh, Dh] f32/bf16 on the device; null = identity
  const Tensor* proj_b = nullptr;  // [Dh] f32/bf16; null = zero
  // Testing hooks: a given block table (I32 [H, nq, kc] on the device, ascending rows) instead of the computed one,
  // the sparse branch alone (no linear branch), and the computed table handed back.
  const Tensor* table = nullptr;
  bool sparse_only = false;
  Tensor* table_out = nullptr;  // receives the block table the op computed (when table is null)
  // Sparse kernel: 0 auto (sm_90: a bulk-copy wgmma kernel for sagesla 64x128 Dh128, the compact one unless
  // TD_SLA_SPARSE=pipelined; else the in-loop wgmma kernel where it applies; TD_SLA_PIPELINED=0 / TD_SLA_WGMMA=0
  // step down), 1 mma.sync,
  // 2 in-loop wgmma (sagesla 64x128 or 128x64, Dh 128, sm_90 only), 3 pipelined wgmma, 4 compact wgmma (both sagesla
  // 64x128, Dh 128, sm_90 only); td::Error where it does not apply.
  int kernel = 0;
  // The linear branch's k/v pass: 0 auto (the wgmma kernel on sm_90 for head_dim 128 unless TD_SLA_LINEAR_WGMMA=0,
  // else mma.sync), 1 mma.sync, 2 wgmma (td::Error where it does not apply).
  int linear_kernel = 0;
  // Benchmarking: time each stage with CUDA events (synchronises the stream) and print the split to stdout.
  bool profile = false;
};

// The per-arch default geometry of a mode on the current device.
void sla_default_blocks(bool quantized, int* bq, int* bk);

// q, k, v, o: bf16 [L, H, Dh] contiguous on the device, Dh 64 or 128. Runs on td::cuda::stream().
void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const SlaParams& p);

// Whether sla_attention_int8 applies: sagesla on sm_90 with a bulk-copy kernel (compact or pipelined; 64x128 blocks,
// head_dim 128) and the automatic kernel choice or kernel 3 / 4.
bool sla_int8_output_supported(const Tensor& q, const SlaParams& p);

// The same attention with its output handed over as the W8A8 activation of the next linear (ops::Int8Act layout):
// out_q int8 [L, H * 128], out_scale f32 [L, H] (one 128-channel group per token and head). td::Error where
// sla_int8_output_supported is false.
void sla_attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out_q, Tensor& out_scale,
                        const SlaParams& p);

// The block map alone: I32 [H, nq, kc] on the device, each row ascending.
Tensor sla_block_map(const Tensor& q, const Tensor& k, int bq, int bk, float topk);

}  // namespace cuda
}  // namespace td
