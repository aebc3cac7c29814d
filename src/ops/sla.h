// Sparse-linear attention (SLA) and its quantized variant (SageSLA), TurboDiffusion's self-attention.
// ops::attention dispatches here for AttentionMode::SLA / SageSLA. Semantics: ../docs/attention.md and issue #3.
#pragma once

#include "ops/ops.h"

namespace td {
namespace ops {

// q, k, v: [L, H, Dh] after RoPE; o: [L, H, Dh]. opts.mode is SLA or SageSLA.
void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts);

}  // namespace ops
}  // namespace td
