// Wan VAE RMS_norm on channels-last rows: y = x / max(||x||_2, 1e-12) * sqrt(C) * gamma (+ bias), then SiLU if asked.
// (The L2 form F.normalize, not mean-square + eps.) x, y [P, C] (any leading shape, last dim C); y may alias x.
#pragma once

#include "core/tensor.h"

namespace td {
namespace cpu {
void vae_rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* bias, bool silu, Tensor& y);
}  // namespace cpu
}  // namespace td
