// CUDA versions of the VAE's small ops (semantics in cpu/vae_rms_norm.h, cpu/vae_attention.h, cpu/vae_resample.h).
// Activations bf16; gamma/bias f32; statistics and softmax in fp32.
#pragma once

#include <functional>

#include "core/tensor.h"

namespace td {
namespace cuda {
void vae_rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y);
// The frame ring of a causal kernel-3 conv (see vae::rms_norm_ring): normalises x [.., C] (H*W rows) into channels
// [slot*C, slot*C + C) of ring [.., 3C]. C must be 24 * a power of two <= 32 (vae_ring_norm_ok: 96, 192, 384).
bool vae_ring_norm_ok(int64_t C);
void vae_rms_norm_ring(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& ring, int slot);
void vae_attention(const Tensor& qkv, Tensor& o);
void vae_upsample_nearest2x(const Tensor& x, Tensor& y);
void vae_time_interleave(const Tensor& x, Tensor& y);
void vae_phase_shuffle(const Tensor& x, Tensor& y);
void vae_zero(Tensor& x);
// Boundary layout changes, on the device: x bf16 [n, H, W, Cx] -> frames [f0, f0 + n) of y f32 [C, F, H, W] (the
// first C <= Cx channels), clamped to [-1, 1] (decoded frames); and x f32 [C, n, H, W] -> y bf16 [n, H, W, Cy]
// with channels C..Cy-1 zero (video frames entering the encoder, channel-padded for cuDNN).
void vae_to_planar_clamped(const Tensor& x, Tensor& y, int64_t f0);
void vae_from_planar(const Tensor& x, Tensor& y);

// Downloads decoded chunks into a host [C, F, H, W] f32 tensor through two pinned staging buffers: the copy of chunk
// k runs on the engine stream behind its kernels while the host already queues chunk k+1, and the host scatters a
// staged chunk into the output only when that slot is needed again (or at finish()). Device memory stays bounded.
class PlanarDownloader {
 public:
  // on_done(f0, n), if set, runs on the calling thread once frames [f0, f0 + n) are in host_out.
  PlanarDownloader(float* host_out, int64_t C, int64_t F, int64_t HW, int64_t max_frames,
                   std::function<void(int64_t, int64_t)> on_done = {});
  ~PlanarDownloader();
  PlanarDownloader(const PlanarDownloader&) = delete;
  PlanarDownloader& operator=(const PlanarDownloader&) = delete;
  // x: bf16 [n, H, W, Cx >= C] decoder output (first C channels used), frames [f0, f0 + n) of the video; clamped to [-1, 1] on the way.
  void push(const Tensor& x, int64_t f0);
  void finish();

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace cuda
}  // namespace td
