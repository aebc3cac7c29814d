// CPU elementwise activations, in place (see ops::silu / ops::gelu_tanh in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void silu(Tensor& x);
void gelu_tanh(Tensor& x);

}  // namespace cpu
}  // namespace td
