// CPU dense attention (see ops::attention in ops/ops.h). Only AttentionMode::Dense reaches here; the dispatcher
// sends SLA/SageSLA to ops::sla_attention. Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, const AttentionOptions& opts);

}  // namespace cpu
}  // namespace td
