// Wan VAE RMS_norm on channels-last rows: with u = x + pre_bias (the bias of the conv that produced x, folded in here
// to save a pass; optional), y = u / max(||u||_2, 1e-12) * sqrt(C) * gamma, then SiLU if asked. (The L2 form
// F.normalize, not mean-square + eps; Wan2.1's norms have no bias of their own.) x, y [P, C] (any leading shape, last
// dim C); y may alias x.
#pragma once

#include "core/tensor.h"

namespace td {
namespace cpu {
void vae_rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y);
}  // namespace cpu
}  // namespace td
