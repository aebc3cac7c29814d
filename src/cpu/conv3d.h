// 3-D convolution over channels-last activations (the VAE's layout), fp32 reference via im2col + OpenBLAS sgemm.
//   x [Ti, Hi, Wi, Cin], w [Cout, kt, kh, kw, Cin], bias [Cout] (optional), y [To, Ho, Wo, Cout]
//   To = (Ti - kt) / st + 1 (no time padding: callers prepend cached/zero frames), Ho = (Hi + pad_top + pad_bottom -
//   kh) / sh + 1, Wo likewise. Spatial zero padding may be asymmetric (Wan's downsample pads right/bottom only).
//   accumulate: y += conv(x) + bias (fuses a residual add); otherwise y = conv(x) + bias.
#pragma once

#include "core/tensor.h"

namespace td {

struct Conv3dParams {
  int stride_t = 1, stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  // Output shape for an input [Ti, Hi, Wi, *] and kernel (kt, kh, kw); td::Error naming `what` if it is empty.
  Shape out_shape(const Shape& x, const Shape& w, const char* what) const;
};

namespace cpu {
void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate);
}  // namespace cpu
}  // namespace td
