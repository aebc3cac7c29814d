// CUDA versions of the VAE's small ops (semantics in cpu/vae_rms_norm.h, cpu/vae_attention.h, cpu/vae_resample.h).
// Activations bf16; gamma/bias f32; statistics and softmax in fp32.
#pragma once

#include "core/tensor.h"

namespace td {
namespace cuda {
void vae_rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y);
void vae_attention(const Tensor& qkv, Tensor& o);
void vae_upsample_nearest2x(const Tensor& x, Tensor& y);
void vae_time_interleave(const Tensor& x, Tensor& y);
void vae_phase_shuffle(const Tensor& x, Tensor& y);
void vae_zero(Tensor& x);
// Boundary layout changes, on the device: x bf16 [n, H, W, C] -> frames [f0, f0 + n) of y f32 [C, F, H, W], clamped
// to [-1, 1] (decoded frames); and x f32 [C, n, H, W] -> y bf16 [n, H, W, C] (video frames entering the encoder).
void vae_to_planar_clamped(const Tensor& x, Tensor& y, int64_t f0);
void vae_from_planar(const Tensor& x, Tensor& y);
}  // namespace cuda
}  // namespace td
