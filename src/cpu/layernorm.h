// CPU fp32 LayerNorms (see ops::layernorm / ops::layernorm_modulate in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y);
void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y);

}  // namespace cpu
}  // namespace td
