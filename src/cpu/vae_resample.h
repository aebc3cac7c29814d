// Layout moves for the VAE's up-sampling, channels-last:
//  - upsample_nearest2x: x [T, H, W, C] -> y [T, 2H, 2W, C] (nearest-exact x2 is pixel duplication);
//  - time_interleave: x [T, H, W, 2C] -> y [2T, H, W, C] with y[2t] = x[t][..., :C], y[2t+1] = x[t][..., C:]
//    (Wan's reshape (b, 2, c, t, h, w) + stack after upsample3d's time_conv).
#pragma once

#include "core/tensor.h"

namespace td {
namespace cpu {
void vae_upsample_nearest2x(const Tensor& x, Tensor& y);
void vae_time_interleave(const Tensor& x, Tensor& y);
// Sub-pixel form of "nearest x2 then 3x3 conv (pad 1)": that conv equals four 2x2 convs on the low-resolution input,
// one per output phase (a, b) = (row parity, column parity), run as one 2x2 conv with pad 1 and the phases stacked in
// its output channels: x [T, H+1, W+1, 4*C] -> y [T, 2H, 2W, C], y[t, 2i+a, 2j+b, c] = x[t, i+a, j+b, (2a+b)*C + c].
void vae_phase_shuffle(const Tensor& x, Tensor& y);
}  // namespace cpu
}  // namespace td

namespace td {
namespace cpu {
// Fills a contiguous tensor with zeros (the causal front padding frames).
void vae_zero(Tensor& x);
}  // namespace cpu
}  // namespace td
