// CUDA backend of ops::rope3d: Wan's 3-D rotary embedding, in place on [L, H, Dh].
#pragma once

#include "ops/ops.h"

namespace td {
namespace cuda {

// x: bf16 or f32 [L, H, Dh] with L = frames*height*width; token rows may be strided (e.g. a view into fused qkv).
void rope3d(Tensor& x, int frames, int height, int width, float theta = 10000.f);

}  // namespace cuda
}  // namespace td
