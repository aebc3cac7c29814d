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
// In-place RMSNorm over whole rows held in registers (one warp per row for D = 4, 8, 12 or 16 x 128, one CTA per row
// for D = 3072, 4096 or 5120), for contiguous [M, D] bf16/f32 and a 16-byte aligned f32/bf16 weight; returns false
// (and does nothing) otherwise. cuda::rmsnorm uses it first: its general kernel reads each row twice.
bool rmsnorm_rows_in_registers(Tensor& x, const Tensor& weight, float eps);

}  // namespace cuda
}  // namespace td
