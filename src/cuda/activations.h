// CUDA backend of ops::silu / ops::gelu_tanh: elementwise, in place, f32 or bf16 (contiguous).
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

void silu(Tensor& x);
void gelu_tanh(Tensor& x);

}  // namespace cuda
}  // namespace td
