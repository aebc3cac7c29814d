// CUDA backend of ops::gated_residual / ops::add_residual (the f32 residual stream).
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

// x[M,D] += y[M,D] * gate[D]. x f32; y bf16 or f32; gate f32 with D elements.
void gated_residual(Tensor& x, const Tensor& y, const Tensor& gate);

// x[M,D] += y[M,D]. x f32; y bf16 or f32.
void add_residual(Tensor& x, const Tensor& y);

}  // namespace cuda
}  // namespace td
