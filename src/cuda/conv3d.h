// CUDA conv3d (same semantics as td::cpu::conv3d, see cpu/conv3d.h): x, w, y bf16 channels-last, bias f32, fp32
// accumulation. Runs through cuDNN (NDHWC, tensor cores); TD_VAE_CONV=naive selects a slow direct kernel for
// debugging a cuDNN problem.
#pragma once

#include "core/tensor.h"
#include "cpu/conv3d.h"

namespace td {
namespace cuda {
void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate);
// The causal kernel-3 conv on a frame ring (see vae::conv_ring): ring [1, H, W, 3C] holds frames t-2, t-1, t in the
// slots the rotation of w_rot [O, 1, kh, kw, 3C] expects; one cuDNN 2-D conv with 3C input channels, so the three
// time taps are one GEMM (K = 27C) and y is written once instead of read and rewritten per tap.
void conv3d_ring(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, Tensor& y, const Conv3dParams& p,
                 bool accumulate);
// conv3d_ring (3x3, pad 1) followed by the VAE RMS norm + SiLU of its result (bias as pre-bias, see
// cpu/vae_rms_norm.h) into ring slot `slot` of ring_out [1, H, W, 3 * O], in one kernel that never stores the conv
// result. With residual [1, H, W, O]: residual += conv + bias is stored, and the norm takes that sum plus pre_bias
// (a residual block's conv2 feeding the next block's norm1). Returns false, doing nothing, where that kernel does not
// run (not sm_90a, O not 96 or 192, TD_VAE_WGMMA=0, TD_VAE_FUSED_NORM=0; with residual also TD_VAE_FUSED_RES_NORM=0).
bool conv3d_ring_norm(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, const Tensor& gamma,
                      Tensor& ring_out, int slot, const Conv3dParams& p, Tensor* residual = nullptr,
                      const Tensor* pre_bias = nullptr);
// The VAE's sub-pixel up-sampling conv (2x2, pad 1, w [4 Oc, 1, 2, 2, C]) straight into the phase-shuffled output
// y [n, 2H, 2W, Oc] (cuda::conv2d_wgmma_subpixel). Returns false, doing nothing, where that kernel does not run (not
// sm_90a, Oc not a multiple of 96, TD_VAE_WGMMA=0, TD_VAE_FUSED_SHUFFLE=0): then conv3d and vae_phase_shuffle.
bool conv3d_subpixel_shuffled(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p);
// Whether conv3d runs a problem with C input and O output channels as per-time-tap 2-D convs (TD_VAE_CONV).
bool conv3d_uses_taps(int64_t C, int64_t O);
// Whether conv3d_causal reads history and input in place for weights w [O, 3, kh, kw, C] (else it concatenates
// first): our wgmma kernel for 3x3x3 with O a multiple of 96 (sm_90a), cuDNN 2-D taps where conv3d_uses_taps.
bool conv3d_causal_direct(const Tensor& w);
// The VAE's causal kernel-3 conv without the concatenation: y = conv3d([zeros(2 - cf), hist, x]) for hist
// [cf <= 2, H, W, C] (undefined = no history) and x [n, H, W, C]; time stride 1, no time padding. Runs as 2-D
// tap convs reading the history and input frames in place (falls back to the concatenation if cuDNN can't).
void conv3d_causal(const Tensor& hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                   const Conv3dParams& p, bool accumulate);
}  // namespace cuda
}  // namespace td
