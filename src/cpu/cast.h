// CPU dtype conversion between host tensors (see ops::cast in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void cast(const Tensor& src, Tensor& dst);

}  // namespace cpu
}  // namespace td
