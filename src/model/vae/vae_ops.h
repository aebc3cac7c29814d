// Device dispatch for the VAE's ops: CPU (f32) or CUDA (bf16) by the output's device. See cpu/conv3d.h,
// cpu/vae_rms_norm.h, cpu/vae_attention.h, cpu/vae_resample.h for the semantics.
#pragma once

#include "core/tensor.h"
#include "cpu/conv3d.h"

namespace td {
namespace vae {

void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate);
void rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y);
void attention(const Tensor& qkv, Tensor& o);
void upsample_nearest2x(const Tensor& x, Tensor& y);
void time_interleave(const Tensor& x, Tensor& y);
void phase_shuffle(const Tensor& x, Tensor& y);
void zero(Tensor& x);

}  // namespace vae
}  // namespace td
