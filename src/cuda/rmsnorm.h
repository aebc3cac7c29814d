// CUDA backend of ops::rmsnorm (Wan's RMSNorm over the whole model dim, in place).
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

// In place: x[M,D] = x * rsqrt(mean(x^2) + eps) * weight[D]. x bf16 or f32 (rows may be strided); weight f32/bf16.
void rmsnorm(Tensor& x, const Tensor& weight, float eps);

}  // namespace cuda
}  // namespace td
