// Sparse-linear attention (SLA) and its quantized variant (SageSLA), TurboDiffusion's self-attention.
// ops::attention dispatches here for AttentionMode::SLA / SageSLA. Semantics: ../docs/attention.md and issue #3.
#pragma once

#include "ops/ops.h"
#include "ops/w8a8.h"

namespace td {
namespace ops {

// q, k, v: [L, H, Dh] after RoPE; o: [L, H, Dh]. opts.mode is SLA or SageSLA.
void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts);

// The attention output handed straight to a W8A8 linear: `out` gets the int8 activation of o ([L, H * 128], one
// 128-channel group per token and head, quantized from fp32 as quantize_act_int8) in place of bf16 o. Only where
// sla_int8_output_supported says so (SageSLA's bulk-copy sm_90 kernels, head_dim 128); td::Error elsewhere.
bool sla_int8_output_supported(const Tensor& q, const AttentionOptions& opts);
void sla_attention_int8(const Tensor& q, const Tensor& k, const Tensor& v, Int8Act& out, const AttentionOptions& opts);

}  // namespace ops
}  // namespace td
