// CPU fp32 LayerNorms (see ops::layernorm / ops::layernorm_modulate in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y);
void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y);
// The residual add, then the norm (two passes here; CUDA fuses them).
void residual_layernorm(Tensor& x, const Tensor& y, const Tensor* gate, const Tensor* mul, const Tensor* add,
                        bool modulate, float eps, Tensor& h);

}  // namespace cpu
}  // namespace td
