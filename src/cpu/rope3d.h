// CPU 3-D RoPE, in place (see ops::rope3d in ops/ops.h). Mirrored by td::cuda.
#pragma once

#include "ops/ops.h"

namespace td {
namespace cpu {

void rope3d(Tensor& x, int frames, int height, int width, float theta);

}  // namespace cpu
}  // namespace td
