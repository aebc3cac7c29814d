// Fused row kernels for the W8A8 DiT path (see ops/w8a8.h): LayerNorm -> adaLN modulate -> int8 (1x128 groups),
// affine LayerNorm (norm3) -> int8, and q/k RMSNorm over the full dim fused with Wan's 3-D RoPE.
#pragma once

#include "ops/w8a8.h"

namespace td {
namespace cuda {

void layernorm_modulate_quant(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps, ops::Int8Act& out);
void layernorm_quant(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, ops::Int8Act& out);
void rmsnorm_rope3d(Tensor& x, const Tensor& weight, float eps, int heads, int frames, int height, int width,
                    float theta);

}  // namespace cuda
}  // namespace td
