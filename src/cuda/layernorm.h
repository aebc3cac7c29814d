// CUDA backend of ops::layernorm_modulate and ops::layernorm: one warp per row, fp32 statistics.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

// y[M,D] = LN(x) * (1 + scale) + shift. x f32 or bf16 [.., D]; shift/scale f32 with D elements; y bf16 (or f32).
void layernorm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, Tensor& y);

// y[M,D] = LN(x) * weight + bias; weight/bias f32 or bf16 with D elements, either may be null.
void layernorm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& y);

// ops::residual_layernorm: one pass (x read and written once, y read once) for contiguous rows of up to 2048
// channels with x f32; otherwise the residual kernel, then the norm.
void residual_layernorm(Tensor& x, const Tensor& y, const Tensor* gate, const Tensor* mul, const Tensor* add,
                        bool modulate, float eps, Tensor& h);

}  // namespace cuda
}  // namespace td
