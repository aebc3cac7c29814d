// The sm_90a wgmma implicit-GEMM conv behind cuda::conv3d_ring (the wide frame-ring convs) and cuda::conv3d's
// sub-pixel up-sampling convs (see conv2d_wgmma_config.h).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace td {
namespace cuda {
// Whether this build has the kernel's sm_90a code and the current GPU runs it.
bool conv2d_wgmma_available();
// Whether the kernel takes a conv with CP input and O output channels and a kh x kw kernel.
bool conv2d_wgmma_fits(int64_t CP, int64_t O, int64_t kh, int64_t kw);
// y [n, Ho, Wo, O] (+)= conv(x [n, H, W, CP], w [O, 1, k, k, CP], padding 1 on every side) + bias, k = 2 or 3
// (Ho = H + 3 - k); all bf16 contiguous on the GPU, bias f32 [O] or null. tile_name picks a tile variant (n96r8,
// n96r4, n192r4: see conv2d_wgmma_config.h; null = TD_VAE_RING_TILE or the default for O).
void conv2d_wgmma(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, bool accumulate,
                  const char* tile_name = nullptr);
// The VAE's sub-pixel up-sampling conv (2x2, pad 1, O = 4 phases x Oc, Oc a multiple of 96) with the phase shuffle in
// its epilogue: y [n, 2H, 2W, Oc] for x [n, H, W, C], as conv2d_wgmma into [n, H+1, W+1, O] and then
// cuda::vae_phase_shuffle, without the intermediate.
void conv2d_wgmma_subpixel(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                           const char* tile_name = nullptr);
// The same conv (O = 96 or 192) with the VAE's RMS norm + SiLU in its epilogue (see cpu/vae_rms_norm.h, with the conv
// bias as the pre-bias): out[..., offset + o] = silu(v / max(|v|, 1e-12) * sqrt(O) * gamma[o]), v = u + pre_bias,
// u = conv + bias, for out [n, Ho, Wo, >= offset + O] (the next conv's frame ring). Without residual the conv result
// itself is not stored; with residual [n, Ho, Wo, O], u = conv + bias + residual (a residual block's output, summed in
// fp32) is stored there too and normalised for the next block.
struct ConvNormOut {
  const Tensor* gamma;  // f32 [O]
  Tensor* out;
  int offset;
  Tensor* residual = nullptr;
  const Tensor* pre_bias = nullptr;  // f32 [O] or null
};
void conv2d_wgmma_norm(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvNormOut& norm,
                       const char* tile_name = nullptr);
// The VAE's causal 3x3x3 conv (time stride 1, spatial padding 1) in place, as cuda::conv3d_causal: y = conv3d([zeros(2
// - cf), hist, x]) + bias for hist [cf <= 2, H, W, C] (undefined = none), x [n, H, W, C], w [O, 3, 3, 3, C]; the
// time taps are K chunks reading their frames where they lie (no concatenated copy). O a multiple of 96.
void conv3d_causal_wgmma(const Tensor& hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                         bool accumulate, const char* tile_name = nullptr);
}  // namespace cuda
}  // namespace td
