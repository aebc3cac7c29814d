// CPU residual updates (see ops::gated_residual / ops::add_residual in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void gated_residual(Tensor& x, const Tensor& y, const Tensor& gate);
void add_residual(Tensor& x, const Tensor& y);

}  // namespace cpu
}  // namespace td
