// CPU fp32 RMSNorm over the whole row (see ops::rmsnorm in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void rmsnorm(Tensor& x, const Tensor& weight, float eps);

}  // namespace cpu
}  // namespace td
